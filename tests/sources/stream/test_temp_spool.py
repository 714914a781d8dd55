"""A stream source's temporary spool (no spool asked for) is removed when the source closes,
or the interpreter exits (not when the object is collected: lazy frames read on); a spool the user gave stays. Real zeromq streams on
127.0.0.1 (the sender stops by itself)."""

from __future__ import annotations

import gc
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from xlive.errors import SourceError
from xlive.sources.stream.receiver import StreamSource

from ..conftest import free_port, start_python

pytestmark = pytest.mark.network

N = 4


def send(address: str) -> subprocess.Popen:
    return start_python(
        ["-m", "xlive.sources.stream.sender", "--bind", address, "--synthetic", "eiger500k"]
        + ["--frames", str(N), "--distinct", "2", "--protocol", "2", "--timeout", "20"]
    )


def received(src: StreamSource) -> int:
    for _ in range(400):  # the receiver publishes within 0.1 s
        if src.refresh() >= N:
            break
        time.sleep(0.05)
    return src.refresh()


def temp_spools(tmp_path, monkeypatch) -> list[Path]:
    """Temporary folders go to ``tmp_path`` (as with TMPDIR): other tests make their own."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return sorted(tmp_path.glob("xlive-spool-*"))


@pytest.mark.parametrize("receiver", ["process", "thread"])
def test_temporary_spool_removed_on_close(receiver):
    address = f"tcp://127.0.0.1:{free_port()}"
    src = StreamSource(address, receiver=receiver)
    folder = src.spool_path.parent
    assert folder.name.startswith("xlive-spool-")
    sender = send(address)
    try:
        assert received(src) == N
        assert src.read_frame(N - 1).shape == src.geometry.shape
    finally:
        src.close()
        sender.communicate(timeout=60)
    assert not folder.exists()
    src.close()  # twice: nothing left to do


def test_lazy_frames_outlive_the_source_object():
    """Frames read lazily after the source object is gone (as ``xlive.analyze("tcp://...")``
    leaves them) still come from the spool: it goes on close or at exit, not when collected."""
    address = f"tcp://127.0.0.1:{free_port()}"
    src = StreamSource(address, receiver="thread")
    folder = src.spool_path.parent
    sender = send(address)
    assert received(src) == N
    sender.communicate(timeout=60)
    frames = src.frames()
    expected = src.read_frame(N - 1).astype(np.float64).sum()
    assert expected > 0
    receiver = src.receiver
    del src
    gc.collect()
    try:
        assert folder.exists()
        assert float(frames[N - 1].sum().compute()) == expected
    finally:
        receiver.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_temporary_spool_removed_at_exit():
    """A script that never closes its source: the spool goes when the interpreter exits."""
    address = f"tcp://127.0.0.1:{free_port()}"
    code = textwrap.dedent(
        f"""
        import time
        from xlive.sources import open_source
        src = open_source({address!r})
        print(src.spool_path, flush=True)
        for _ in range(400):
            if src.refresh() >= {N}:
                break
            time.sleep(0.05)
        print(src.refresh(), flush=True)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    spool = Path(child.stdout.readline().strip())
    assert spool.parent.name.startswith("xlive-spool-") and spool.parent.exists()
    sender = send(address)
    out, err = child.communicate(timeout=60)
    sender.communicate(timeout=60)
    assert child.returncode == 0, err
    assert out.strip() == str(N)
    assert not spool.parent.exists()


def test_spool_given_by_the_user_stays(tmp_path, monkeypatch):
    address = f"tcp://127.0.0.1:{free_port()}"
    assert temp_spools(tmp_path, monkeypatch) == []
    src = StreamSource(address, spool=tmp_path / "spool.zarr", receiver="thread")
    sender = send(address)
    try:
        assert received(src) == N
    finally:
        src.close()
        sender.communicate(timeout=60)
    assert (tmp_path / "spool.zarr" / "zarr.json").exists()
    assert StreamSource(None, spool=tmp_path / "spool.zarr").refresh() == N
    assert sorted(tmp_path.glob("xlive-spool-*")) == []  # no temporary folder on the side


def test_refused_address_leaves_no_temporary_folder(tmp_path, monkeypatch):
    assert temp_spools(tmp_path, monkeypatch) == []
    with pytest.raises(SourceError, match="must look like tcp://HOST:PORT"):
        StreamSource("udp://127.0.0.1:9999")
    assert sorted(tmp_path.glob("xlive-spool-*")) == []
