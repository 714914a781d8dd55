"""A full disk or a read-only output: one clear line (exit 2), and the feature store resumes.

The full and read-only file systems are real: a small tmpfs, remounted read-only. Mounting needs
root (CAP_SYS_ADMIN); elsewhere these tests skip and say so.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from xlive.engine.store import FeatureStore

SAMPLE = Path(__file__).resolve().parents[2] / "data-samples" / "lysozyme-eiger500k"


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()

    def mount(opts: str) -> None:
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mnt)], capture_output=True, text=True
        )
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")

    def remount(opts: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{opts}", str(mnt)], check=True)

    yield mnt, mount, remount
    subprocess.run(["umount", str(mnt)], capture_output=True)


def process(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "xlive.cli",
            "process",
            str(SAMPLE),
            "--out",
            str(out),
            "--no-db",
            "-q",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_line(r: subprocess.CompletedProcess, words: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert words in lines[0] and "resumes" in lines[0]


@pytest.mark.slow
def test_disk_full_then_resume(small_fs):
    mnt, mount, remount = small_fs
    mount("size=200k")  # room for the store's skeleton, not for the 16 frames' features
    out = mnt / "f.zarr"
    one_line(process(out), "the disk is full")
    remount("size=4m")  # space freed: the same command finishes the run
    r = process(out)
    assert r.returncode == 0, r.stderr
    store = FeatureStore.open(out)
    assert store.frames_seen == 16 and store.frames_done_count() == 16


@pytest.mark.slow
def test_read_only_output_then_resume(small_fs):
    mnt, mount, remount = small_fs
    mount("size=200k")
    out = mnt / "f.zarr"
    assert process(out).returncode == 2  # partly written: the disk filled up
    remount("ro")
    one_line(process(out), "read-only")
    remount("rw,size=4m")
    assert process(out).returncode == 0
    assert FeatureStore.open(out).frames_done_count() == 16


@pytest.mark.slow
def test_full_disk_at_creation_leaves_no_half_store(small_fs):
    mnt, mount, _ = small_fs
    mount("size=100k")
    out = mnt / "f.zarr"
    one_line(process(out), "the disk is full")
    assert list(mnt.iterdir()) == []  # neither a broken store nor a .partial folder
