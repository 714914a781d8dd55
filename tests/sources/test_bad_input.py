"""Bad input: a clear error when opening, or (mid-run) a bad frame and the run goes on."""

from __future__ import annotations

import fabio
import h5py
import hdf5plugin
import numpy as np
import pytest
import zarr

from xlive.errors import BadFrameError, SourceError
from xlive.geometry import Geometry
from xlive.sources import open_source


def test_unknown_target_names_what_was_tried(tmp_path):
    with pytest.raises(SourceError, match="tried") as info:
        open_source(tmp_path / "nothing.xyz")
    assert "zarr" in str(info.value) and "tcp://" in str(info.value)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(SourceError, match="truncated"):
        open_source(tmp_path / "junk.h5")


def _h5(path, frames):
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "/entry/data/data",
            data=frames,
            chunks=(1, *frames.shape[1:]),
            **hdf5plugin.Bitshuffle(),
        )


def test_truncated_hdf5_data_file_is_a_clear_error(tmp_path):
    frames = np.random.default_rng(1).integers(0, 50, (4, 64, 64)).astype(np.uint16)
    _h5(tmp_path / "d.h5", frames)
    raw = (tmp_path / "d.h5").read_bytes()
    (tmp_path / "t.h5").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(SourceError, match="t.h5"):
        open_source(tmp_path / "t.h5")


def test_truncated_eiger_data_file_mid_run_marks_its_frames_bad(tmp_path):
    shape = (32, 40)
    master = tmp_path / "x_master.h5"
    with h5py.File(master, "w") as f:
        det = f.create_group("/entry/instrument/detector")
        for k, v in dict(
            beam_center_x=20.0,
            beam_center_y=16.0,
            detector_distance=0.1,
            x_pixel_size=75e-6,
            y_pixel_size=75e-6,
        ).items():
            det[k] = v
        f["/entry/instrument/beam/incident_wavelength"] = 1.0
        for k in range(3):
            f[f"/entry/data/data_{k + 1:06d}"] = h5py.ExternalLink(
                f"x_data_{k + 1:06d}.h5", "/entry/data/data"
            )
    data = [np.full((2, *shape), 10 * k + 1, np.uint32) for k in range(3)]
    for k in range(3):
        p = tmp_path / f"x_data_{k + 1:06d}.h5"
        with h5py.File(p, "w") as f:
            d = f.create_dataset(
                "/entry/data/data", data=data[k], chunks=(1, *shape), **hdf5plugin.Bitshuffle()
            )
            d.attrs["image_nr_low"], d.attrs["image_nr_high"] = 2 * k + 1, 2 * k + 2
    src = open_source(master)
    assert src.refresh() == 6
    first = src.frames().values  # read before the damage: kept
    src.close()
    raw = (tmp_path / "x_data_000002.h5").read_bytes()
    (tmp_path / "x_data_000002.h5").write_bytes(raw[:300])
    src2 = open_source(master)
    assert src2.refresh() == 6  # the third file tells where the broken one ended
    assert src2.bad_frames == {2, 3}
    arr = src2.frames()
    assert arr.bad.values.tolist() == [False, False, True, True, False, False]
    np.testing.assert_array_equal(arr[4:].values, data[2])
    with pytest.raises(BadFrameError):
        src2.read_frame(2)
    np.testing.assert_array_equal(first[2:4], data[1])


def test_corrupt_zarr_chunk_is_a_bad_frame(tmp_path):
    g = zarr.open_group(str(tmp_path / "r.zarr"), mode="w")
    a = g.create_array(
        "frames", shape=(4, 16, 16), chunks=(1, 16, 16), dtype="uint16", fill_value=0
    )
    a[...] = np.arange(4 * 256, dtype=np.uint16).reshape(4, 16, 16)
    g.attrs["frames_complete"] = 4
    chunk = tmp_path / "r.zarr" / "frames" / "c" / "2" / "0" / "0"
    chunk.write_bytes(b"\x00garbage" * 3)
    src = open_source(tmp_path / "r.zarr")
    assert src.refresh() == 4
    values = src.frames().values
    assert values[2].sum() == 0 and 2 in src.bad_frames
    np.testing.assert_array_equal(values[3], np.arange(3 * 256, 4 * 256).reshape(16, 16))
    with pytest.raises(BadFrameError, match="frame 2"):
        src.read_frame(2)


def test_cbf_of_wrong_size_mid_run_is_bad(tmp_path):
    for i, shape in enumerate([(20, 30), (20, 30), (10, 30), (20, 30)]):
        fabio.cbfimage.CbfImage(data=np.full(shape, i + 1, np.int32)).write(
            str(tmp_path / f"s_{i:03d}.cbf")
        )
    src = open_source(tmp_path)
    assert src.refresh() == 4  # counted from the listing (no decode per file) ...
    v = src.frames().values
    assert v[3].max() == 4 and v[2].max() == 0
    assert src.bad_frames == {2}  # ... and found bad when read


def test_all_masked_and_nan_frames(tmp_path):
    g = zarr.open_group(str(tmp_path / "f.zarr"), mode="w")
    a = g.create_array("frames", shape=(3, 8, 8), chunks=(1, 8, 8), dtype="float32", fill_value=0)
    frames = np.ones((3, 8, 8), np.float32)
    frames[0, 0, 0] = np.nan  # one NaN pixel: invalid in this frame, frame fine
    frames[1] = np.nan  # all NaN: bad
    a[...] = frames
    src = open_source(
        tmp_path / "f.zarr",
        geometry=Geometry.simple(
            shape=(8, 8),
            pixel_size=1e-4,
            distance=0.1,
            beam_center_x=4,
            beam_center_y=4,
            wavelength=1,
        ),
    )
    src.refresh()
    # no pixel is masked for the value it holds in one frame (NaN is invalid where it is)
    assert src.geometry.mask is None
    assert src.geometry.valid_range(np.float32) == (-np.inf, np.inf)
    v = src.frames().values  # computing finds the bad frame...
    assert np.isnan(v[1]).all() and src.bad_frames == {1}
    assert src.frames().bad.values.tolist() == [False, True, False]  # ...and later graphs know it
    # an Eiger frame full of the gap value is all-masked too
    u = zarr.open_group(str(tmp_path / "u.zarr"), mode="w")
    b = u.create_array("frames", shape=(2, 8, 8), chunks=(1, 8, 8), dtype="uint32", fill_value=0)
    b[0] = 2**32 - 1
    b[1] = 3
    s2 = open_source(tmp_path / "u.zarr")
    with pytest.raises(BadFrameError, match="masked"):
        s2.read_frame(0)
    assert s2.read_frame(1).max() == 3
