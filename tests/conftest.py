"""Shared fixtures: the measured-data folder beside the checkout, small simulated runs."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REALDATA = (REPO / ".." / "shared" / "realdata").resolve()


@pytest.fixture(scope="session")
def realdata() -> Path:
    """``../shared/realdata`` beside the checkout; tests skip when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"measured data folder {REALDATA} is absent (it sits beside the checkout in CI)")
    return REALDATA
