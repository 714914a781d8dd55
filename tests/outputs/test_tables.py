"""Feature tables: one row per frame and one per peak, Parquet and CSV, equal to the store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xlive.engine.store import open_features
from xlive.errors import ConfigError
from xlive.outputs.tables import frame_table, peak_table, read_table_info, write_table


@pytest.mark.parametrize("name", ["frames.parquet", "frames.csv"])
def test_frame_table_round_trip(processed, tmp_path, name):
    ds = open_features(processed.features)
    written = write_table(processed.features, tmp_path / name)
    back = (
        pd.read_parquet(tmp_path / name)
        if name.endswith("parquet")
        else pd.read_csv(tmp_path / name)
    )
    assert len(back) == ds.sizes["frame"] == len(written)
    np.testing.assert_array_equal(back["frame"], ds.frame.values)
    # timestamps stay times (datetime64; ISO text in CSV)
    assert ds.timestamp.dtype.kind == "M"
    np.testing.assert_array_equal(
        pd.to_datetime(back["timestamp"]).to_numpy("datetime64[ns]"), ds.timestamp.values
    )
    for col in ("n_spots", "d_min", "frame_number"):
        np.testing.assert_allclose(
            back[col].to_numpy(float),
            ds[col].values.astype(float),
            rtol=1e-6,
            equal_nan=True,
            err_msg=col,
        )
    np.testing.assert_array_equal(back["is_hit"].astype(bool), ds.is_hit.values)
    assert "radial_profile" not in back  # profiles stay in the Zarr store


def test_peak_table_has_one_row_per_peak(processed, tmp_path):
    ds = open_features(processed.features)
    write_table(processed.features, tmp_path / "peaks.parquet", peaks=True)
    back = pd.read_parquet(tmp_path / "peaks.parquet")
    counts = np.isfinite(ds.peak_x.values).sum(axis=1)
    assert len(back) == counts.sum() > 0
    per_frame = back.groupby("frame").size()
    for frame, n in zip(ds.frame.values, counts, strict=True):
        assert per_frame.get(frame, 0) == n
    row = back.iloc[7]
    assert row["peak_x"] == ds.peak_x.sel(frame=row["frame"]).values[row["peak"]]
    assert read_table_info(tmp_path / "peaks.parquet")["units"]["peak_d"] == "angstrom"
    csv = pd.read_csv(
        write_table(ds, tmp_path / "peaks.csv", peaks=True).pipe(lambda t: tmp_path / "peaks.csv")
    )
    np.testing.assert_allclose(csv["peak_y"], back["peak_y"], rtol=1e-6)
    pd.testing.assert_frame_equal(peak_table(ds), peak_table(processed.features))
    assert len(frame_table(ds)) == ds.sizes["frame"]


def test_unknown_suffix_says_how_to_fix(processed, tmp_path):
    with pytest.raises(ConfigError, match=r"\.parquet or \.csv"):
        write_table(processed.features, tmp_path / "t.xlsx")
