"""One test per bad value a user can give: the command refuses it in one clear line (exit 2),
never a traceback, a numba typing dump or a silent default."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data-samples" / "lysozyme-eiger500k"


def xlive(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xlive.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def assert_one_line_error(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [
        ln
        for ln in r.stderr.splitlines()
        if ln.strip() and not ln.startswith("usage:") and not ln.startswith(" ")
    ]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and "numba" not in r.stderr.lower()
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.parametrize(
    "args, words",
    [
        (["simulate", "OUT", "--rate", "inf"], ["--rate", "finite"]),
        (["simulate", "OUT", "--rate", "nan"], ["--rate", "finite"]),
        (["simulate", "OUT", "--rate", "1e-9"], ["--rate", "one per hour"]),
        (["simulate", "OUT", "--rate", "-5"], ["--rate", ">= 0"]),
        (["simulate", "OUT", "--frames", "ten"], ["--frames", "integer"]),
        (["simulate", "OUT", "--hit-fraction", "1.5"], ["--hit-fraction", "<= 1"]),
        (["simulate", "OUT", "--wavelength", "nan"], ["--wavelength", "finite"]),
        (["process", "RUN", "--out", "F", "--workers", "-1"], ["--workers", ">= 1"]),
        (["process", "RUN", "--out", "F", "--workers", "0"], ["--workers", ">= 1"]),
        (["process", "RUN", "--out", "F", "--sample", "0"], ["--sample", "> 0"]),
        (["process", "RUN", "--out", "F", "--idle-timeout", "inf"], ["--idle-timeout", "finite"]),
        (["demo", "--port", "99999"], ["--port", "<= 65535"]),
    ],
)
def test_bad_cli_value(tmp_path, args, words):
    args = [str(tmp_path / a) if a in ("OUT", "RUN", "F") else a for a in args]
    r = xlive(*args)
    assert_one_line_error(r, *words)
    assert not (tmp_path / "OUT").exists()  # refused before anything was written


def test_simulate_library_refuses_bad_rates(tmp_path):
    from xlive.errors import ConfigError
    from xlive.simulate import write_run

    for rate in (float("inf"), float("nan"), 1e-9, -1.0):
        with pytest.raises(ConfigError, match="rate"):
            write_run(tmp_path / "run", frames=2, rate=rate, detector="eiger500k")


def test_min_snr_text_in_config(tmp_path):
    """A wrongly typed analyzer parameter stops the run at once, in one line, exit 2."""
    cfg = tmp_path / "run.toml"
    cfg.write_text('[analyzers.spots]\nmin_snr = "high"\n')
    r = xlive(
        "process",
        str(SAMPLE),
        "--out",
        str(tmp_path / "f.zarr"),
        "--config",
        str(cfg),
        "--no-db",
        "-q",
        "--workers",
        "1",
    )
    assert_one_line_error(r, "min_snr", "a number", "'high'")
    assert "stored features" not in r.stdout


def test_corrupt_first_cbf_gives_a_reason(tmp_path):
    from xlive.errors import SourceError
    from xlive.sources import open_source

    run = tmp_path / "cbf"
    r = xlive(
        "simulate",
        str(run),
        "--format",
        "cbf",
        "--frames",
        "2",
        "--rate",
        "0",
        "--detector",
        "eiger500k",
        "-q",
    )
    assert r.returncode == 0, r.stderr
    first = sorted(run.glob("*.cbf"))[0]
    first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])  # truncated
    with pytest.raises(SourceError) as exc:
        open_source(str(run / "*.cbf"), settle_time=0.0)
    msg = str(exc.value)
    assert first.name in msg and "()" not in msg and "truncated or corrupt" in msg


def test_output_under_a_file_is_one_line(tmp_path):
    """An output the OS refuses (here: a path under a regular file) gives one line, exit 2."""
    (tmp_path / "afile").write_text("x")
    r = xlive(
        "process",
        str(SAMPLE),
        "--out",
        str(tmp_path / "afile" / "f.zarr"),
        "--no-db",
        "-q",
        "--workers",
        "1",
    )
    assert_one_line_error(r, "afile")
