"""The code stays formatted and lint-clean (ruff, configured in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["xlive", "tests", "bench"]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]' brings it)")
    return subprocess.run([ruff, *args, *PATHS], cwd=ROOT, capture_output=True, text=True)


def test_code_is_formatted():
    res = _ruff("format", "--check")
    assert res.returncode == 0, "run `ruff format xlive tests bench`:\n" + res.stdout[-3000:]


def test_lint_is_clean():
    res = _ruff("check")
    assert res.returncode == 0, res.stdout[-3000:]
