"""A folder of image files opens with a directory listing plus one header, not a decode per
file (10,000 large CBFs took over an hour before analysis started)."""

from __future__ import annotations

import os
import time

import fabio
import numpy as np
import pytest

import xlive.sources.files as files_mod
from xlive.errors import BadFrameError
from xlive.sources import open_source


def test_folder_of_files_is_counted_without_decoding_them(tmp_path, monkeypatch):
    n = 200
    fabio.cbfimage.CbfImage(data=np.arange(64 * 48, dtype=np.int32).reshape(64, 48)).write(
        str(tmp_path / "img_00000.cbf")
    )
    whole = (tmp_path / "img_00000.cbf").read_bytes()
    for i in range(1, n):  # copies, except frame 7: garbage (found when read, not at opening)
        (tmp_path / f"img_{i:05d}.cbf").write_bytes(b"garbage" if i == 7 else whole)
    old = time.time() - 3600
    for p in tmp_path.iterdir():
        os.utime(p, (old, old))
    decoded = []
    real = files_mod._decode
    monkeypatch.setattr(files_mod, "_decode", lambda p: decoded.append(p) or real(p))
    src = open_source(tmp_path)
    assert src.refresh() == n
    assert len(decoded) <= 2  # the first file (shape, header); the newest is settled
    assert not src.bad_frames
    np.testing.assert_array_equal(src.read_frame(150), src.read_frame(0))
    with pytest.raises(BadFrameError, match="frame 7"):
        src.read_frame(7)
    assert 7 in src.bad_frames
