"""set_many: several zarr arrays written in one pass (or one by one), read back by zarr."""

import numpy as np
import pytest
import zarr

from xlive.sources._zarr_write import set_many


@pytest.mark.parametrize("gather", [True, False])
def test_set_many_spans_and_merged_rows(tmp_path, gather):
    a = zarr.create_array(tmp_path / "a", shape=(300,), chunks=(128,), dtype="float32")
    b = zarr.create_array(tmp_path / "b", shape=(300, 3), chunks=(128, 3), dtype="int64")
    ref_a, ref_b = np.full(300, np.nan, np.float32), np.zeros((300, 3), np.int64)
    ref_a[:] = a[:]
    va, vb = np.arange(140, dtype=np.float32), np.arange(420).reshape(140, 3)
    set_many([a, b], slice(100, 240), [va, vb], gather=gather)  # over a chunk boundary
    ref_a[100:240], ref_b[100:240] = va, vb
    rows = np.array([0, 5, 40])  # rows 250, 255, 290: the rows between keep their values
    set_many([a, b], slice(250, 291), [va[:3] + 1000, vb[:3] + 1000], rows, gather=gather)
    ref_a[250 + rows], ref_b[250 + rows] = va[:3] + 1000, vb[:3] + 1000
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "a", mode="r")[:], ref_a)
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "b", mode="r")[:], ref_b)


def test_resize_many_in_one_pass(tmp_path):
    from xlive.sources._zarr_write import resize_many

    a = zarr.create_array(tmp_path / "a", shape=(100,), chunks=(128,), dtype="float32")
    b = zarr.create_array(tmp_path / "b", shape=(100, 3), chunks=(128, 3), dtype="int64")
    a[:] = np.arange(100)
    resize_many([a, b], [(300,), (300, 3)])
    assert a.shape == (300,) and b.shape == (300, 3)  # the handles follow, as with resize
    a[250:] = 7.0  # and write into the new rows
    again = zarr.open_array(tmp_path / "a", mode="r")
    assert again.shape == (300,) and zarr.open_array(tmp_path / "b", mode="r").shape == (300, 3)
    np.testing.assert_array_equal(again[:100], np.arange(100))
    assert np.all(again[250:] == 7.0)
