from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

REALDATA = (Path(__file__).parents[2] / "../shared/realdata").resolve()


@pytest.fixture
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"real data folder {REALDATA} is absent (it sits beside the checkout in CI)")
    return REALDATA


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_python(code_or_module: list[str]) -> subprocess.Popen:
    """A separate Python process (the writer side of a growing-run test)."""
    return subprocess.Popen(
        [sys.executable, *code_or_module], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
