"""Truncated, padded or mis-sized bitshuffle-LZ4 frames are refused before any C decoder
sees them (bitshuffle's and hdf5plugin's decoders read past the end of a truncated blob and
crash the process): a ValueError naming what is wrong, a bad frame for the readers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from xlive.sources._bslz4 import _walk_blocks, _walk_blocks_ref, bslz4_check, bslz4_encode

from .bslz4_damage import damaged, frame

HERE = Path(__file__).parent


#: the children import the helpers from this folder
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}


def child(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, env=ENV
    )


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "int32"])
@pytest.mark.parametrize("shape", [(256, 256), (37, 41), (1, 5)])
def test_block_walk_equals_reference(dtype, shape):
    blob = bslz4_encode(frame(shape, dtype))
    itemsize = np.dtype(dtype).itemsize
    n = shape[0] * shape[1]
    block = max(128, (8192 // itemsize) // 8 * 8)
    cases = [blob, *damaged(blob).values(), blob[:-3] + b"\xff\xff\xff"]
    cases += [blob[:k] for k in range(12, len(blob), max(1, len(blob) // 40))]
    for case in cases:
        buf = np.frombuffer(case, np.uint8)
        assert _walk_blocks()(buf, n, itemsize, block) == _walk_blocks_ref(buf, n, itemsize, block)
    buf = np.frombuffer(blob, np.uint8)
    assert _walk_blocks()(buf, n, itemsize, block)[0] == 0  # the whole frame passes
    assert bslz4_check(blob, itemsize=itemsize, n=n) == block * itemsize


#: decodes damaged blobs in a child: before the checks, bitshuffle's decoder segfaulted
DECODE = """
import sys, numpy as np
from xlive.sources._bslz4 import bslz4_decode, bslz4_encode
from bslz4_damage import damaged, frame
dtype, writable = sys.argv[1], sys.argv[2] == "1"
f = frame((256, 256), dtype)
for name, blob in damaged(bslz4_encode(f)).items():
    try:
        bslz4_decode(blob, dtype=np.dtype(dtype), shape=f.shape, writable=writable)
        print(name, "decoded")
    except Exception as exc:
        print(name, type(exc).__name__, exc)
"""


@pytest.mark.parametrize("writable", ["1", "0"])  # bitshuffle's decoder, DECTRIS's
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32"])
def test_damaged_blobs_raise_before_decoding(dtype, writable):
    out = child(DECODE, dtype, writable)
    assert out.returncode == 0, f"the decoder crashed ({out.returncode}): {out.stderr[-500:]}"
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert set(lines) == set(damaged(b"\x00" * 100))
    for name, text in lines.items():
        assert text.startswith("ValueError"), (name, text)
    assert "truncated" in lines["half"] and "block 0" in lines["in_first_block"]
    assert "3 bytes after its last block" in lines["padded"]


def test_header_sizes_are_named():
    f = frame((16, 16), "uint16")
    blob = bytearray(bslz4_encode(f))
    with pytest.raises(ValueError, match="says 512 bytes, expected 1024"):
        bslz4_check(blob, itemsize=2, n=512)
    with pytest.raises(ValueError, match="less than its 12-byte header"):
        bslz4_check(blob[:7], itemsize=2, n=256)
    blob[8:12] = (8191).to_bytes(4, "big")
    with pytest.raises(ValueError, match="block size of 8191 bytes"):
        bslz4_check(blob, itemsize=2, n=256)
    blob[8:12] = (0).to_bytes(4, "big")
    with pytest.raises(ValueError, match="block size of 0 bytes"):
        bslz4_check(blob, itemsize=2, n=256)


#: an Eiger-style file (one bitshuffle-LZ4 frame per chunk) with a truncated chunk (frame 1)
#: and a padded one (frame 2), read block-wise as the workers do, in a child
H5 = """
import sys, h5py, hdf5plugin, numpy as np
from xlive.sources._bslz4 import bslz4_encode
from bslz4_damage import frame
from xlive.sources.hdf5 import H5SegmentsReader
path, dtype = sys.argv[1], sys.argv[2]
frames = np.random.default_rng(0).poisson(1, (4, 64, 80)).astype(dtype)
with h5py.File(path, "w") as f:
    d = f.create_dataset("data", shape=frames.shape, dtype=dtype, chunks=(1, 64, 80),
                         **hdf5plugin.Bitshuffle(cname="lz4"))
    for k in range(4):
        blob = bslz4_encode(frames[k])
        blob = {1: blob[:13], 2: blob + b"\\0" * 5}.get(k, blob)
        d.id.write_direct_chunk((k, 0, 0), blob)
reader = H5SegmentsReader([(path, "data", 0, 4)], shape=(64, 80), dtype=np.dtype(dtype))
block = reader.read_block(0, 4)
assert sorted(reader.bad) == [1, 2], reader.bad
assert (block[0] == frames[0]).all() and (block[3] == frames[3]).all()
assert (block[1] == 0).all() and (block[2] == 0).all()
try:
    reader.read_one(1)
except Exception as exc:
    print(type(exc).__name__, exc)
"""


@pytest.mark.parametrize("dtype", ["uint16", "uint32"])
def test_eiger_h5_damaged_chunks_are_bad_frames(tmp_path, dtype):
    out = child(H5, str(tmp_path / "data.h5"), dtype)
    assert out.returncode == 0, f"the reader crashed ({out.returncode}): {out.stderr[-800:]}"
    assert out.stdout.startswith("BadFrameError frame 1 cannot be read (ValueError:")
    assert "truncated" in out.stdout and "marked bad" in out.stdout


def test_spool_truncated_chunk_file_is_a_bad_frame(tmp_path):
    """A spool chunk file cut short (disk full, a receiver killed mid-write): the frame is
    bad, the others read; zarr (the spool's codec) refuses it too."""
    code = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        import numpy as np
        import zarr
        from xlive.sources.stream.protocol import Image
        from xlive.sources.stream.receiver import StreamSource
        from xlive.sources.stream.spool import Spool
        from bslz4_damage import frame
        root = Path(sys.argv[1])
        frames = [frame((40, 48), "uint32", seed=k) for k in range(3)]
        sp = Spool(root)
        for k, f in enumerate(frames):
            sp.image(Image(1, k, f.shape, f.dtype, "<", f.tobytes(), 1000.0 + k))
        sp.flush()
        chunk = next(p for p in (root / "seg000" / "frames").rglob("*") if p.is_file()
                     and p.name != "zarr.json" and p.name.endswith("1.0.0"))
        chunk.write_bytes(chunk.read_bytes()[:16])
        src = StreamSource(None, spool=root)
        assert src.refresh() == 3
        block = src.reader.read_block(0, 3)
        assert src.reader.bad == {1}, src.reader.bad
        assert (block[0] == frames[0]).all() and (block[2] == frames[2]).all()
        src.close()
        try:  # through zarr and the spool's codec (bitshuffle's decoder), as ZarrSource reads
            zarr.open_array(root / "seg000" / "frames", mode="r")[1]
        except ValueError as exc:
            print(exc)
        """
    )
    out = child(code, str(tmp_path / "spool.zarr"))
    assert out.returncode == 0, f"the reader crashed ({out.returncode}): {out.stderr[-800:]}"
    assert out.stdout.startswith("bitshuffle-LZ4 frame is truncated: 16 bytes")
