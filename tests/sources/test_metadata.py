from __future__ import annotations

import h5py
import numpy as np
import zarr

from xlive.sources import open_source
from xlive.sources.metadata import read_side_table


def _store(path, n):
    g = zarr.open_group(str(path), mode="w")
    a = g.create_array("frames", shape=(n, 4, 4), chunks=(1, 4, 4), dtype="uint16", fill_value=0)
    a[...] = 1
    g.attrs["frames_complete"] = n


def test_csv_side_table_joined_by_frame_while_it_grows(tmp_path):
    _store(tmp_path / "r.zarr", 4)
    csv = tmp_path / "m.csv"
    csv.write_text("frame,laser_on,pulse_energy\n1,1,0.5\n0,0,0.25\n2,1,0.7")  # row 2 unfinished
    src = open_source(tmp_path / "r.zarr", metadata=csv)
    f = src.frames()
    assert f.laser_on.values.tolist() == [False, True, False, False]
    np.testing.assert_array_equal(f.pulse_energy.values[:2], [0.25, 0.5])
    assert np.isnan(f.pulse_energy.values[2:]).all()  # not known yet
    csv.write_text(csv.read_text() + "\n3,1,0.9\n")
    src.refresh()
    np.testing.assert_allclose(src.frames().pulse_energy.values, [0.25, 0.5, 0.7, 0.9])


def test_hdf5_side_table(tmp_path):
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["metadata/timestamp"] = np.arange(3, dtype=float) + 100
        f["metadata/laser_on"] = np.array([1, 0, 1], np.uint8)
    t = read_side_table(tmp_path / "m.h5")
    assert t.index.tolist() == [0, 1, 2] and t.laser_on.tolist() == [True, False, True]
    _store(tmp_path / "r.zarr", 3)
    f = open_source(tmp_path / "r.zarr", metadata=tmp_path / "m.h5").frames()
    np.testing.assert_array_equal(f.timestamp.values, [100, 101, 102])
