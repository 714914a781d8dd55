"""The output subcommands from the command line: export-hits and export-table."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
from xlive_testing import run_xlive

from xlive.engine.store import open_features


def test_export_hits_command(processed, tmp_path):
    cxi, lst, geom = tmp_path / "h.cxi", tmp_path / "h.lst", tmp_path / "h.geom"
    out = run_xlive(
        "export-hits",
        str(processed.features),
        "--cxi",
        str(cxi),
        "--lst",
        str(lst),
        "--geom",
        str(geom),
        "--compress",
    ).stdout
    n_hits = int(open_features(processed.features).is_hit.sum())
    assert f"wrote {n_hits} hits" in out and "indexamajig -i" in out
    with h5py.File(cxi, "r") as f:
        assert f["entry_1/data_1/data"].shape[0] == n_hits
        assert f["entry_1/data_1/data"].compression == "gzip"
    assert len(lst.read_text().splitlines()) == n_hits and geom.exists()
    again = run_xlive("export-hits", str(processed.features), "--cxi", str(cxi), check=False)
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_export_table_command(processed, tmp_path):
    run_xlive("export-table", str(processed.features), "--out", str(tmp_path / "f.parquet"))
    run_xlive(
        "export-table", str(processed.features), "--out", str(tmp_path / "p.csv.gz"), "--peaks"
    )
    ds = open_features(processed.features)
    assert len(pd.read_parquet(tmp_path / "f.parquet")) == ds.sizes["frame"]
    assert len(pd.read_csv(tmp_path / "p.csv.gz")) == np.isfinite(ds.peak_x.values).sum()
