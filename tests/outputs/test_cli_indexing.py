"""Indexing from the command line: process --cell, report, run database, export-hits --stream,
and errors users can make with the indexing options."""

from __future__ import annotations

import numpy as np
import pytest
from xlive_testing import run_xlive

from xlive.engine.store import open_features
from xlive.outputs.rundb import RunDB
from xlive.outputs.stream import read_stream
from xlive.simulate import write_run

CELL = "79.1,79.1,37.9,90,90,90"


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli_indexing")
    run = tmp / "run"
    write_run(
        run,
        frames=20,
        rate=0,
        detector="eiger500k",
        seed=13,
        hit_fraction=0.7,
        multi_lattice_fraction=0.4,
    )
    feats = tmp / "features.zarr"
    out = run_xlive(
        "process",
        str(run),
        "--out",
        str(feats),
        "--cell",
        CELL,
        "--space-group",
        "P 43 21 2",
        "--workers",
        "1",
        "--db",
        str(tmp / "runs.sqlite"),
        "-q",
    ).stdout
    assert "stored features of 20 frames" in out
    return tmp, run, feats


def test_process_with_a_cell_indexes_every_hit(indexed):
    tmp, _, feats = indexed
    ds = open_features(feats)
    hit = ds["is_hit"].values
    assert np.array_equal(ds["index_tried"].values, hit) and hit.sum() >= 5
    assert ds["indexed"].values[hit].mean() >= 0.9
    assert (ds["n_lattices"].values == 2).any()  # the simulated two-crystal hits
    np.testing.assert_allclose(
        np.nanmedian(ds["unit_cell"].values[:, 0], axis=0),
        [79.1, 79.1, 37.9, 90, 90, 90],
        rtol=0.005,
    )
    assert ds.attrs["indexing_space_group"] == "P 43 21 2"
    # the run database has the indexing rate and the median cell
    with RunDB(tmp / "runs.sqlite") as db:
        row = db.runs()[0]
    assert row["hits_tried"] == hit.sum() and row["indexing_rate"] >= 0.9
    np.testing.assert_allclose(row["median_cell"], [79.1, 79.1, 37.9, 90, 90, 90], rtol=0.005)
    assert row["multi_lattice_hits"] >= 1


def test_report_and_stream(indexed):
    tmp, _, feats = indexed
    html = tmp / "report.html"
    run_xlive("report", str(feats), "--html", str(html))
    text = html.read_text()
    assert "Indexing rate (of hits tried)" in text and "Median unit cell" in text
    assert "indexing_rate" in text and "cell_gamma" in text  # the plots' names
    out = run_xlive(
        "export-hits", str(feats), "--cxi", str(tmp / "h.cxi"), "--stream", str(tmp / "h.stream")
    ).stdout
    n = int(open_features(feats)["indexed"].sum())
    assert f"wrote {n} indexed hits to the CrystFEL stream" in out
    s = read_stream(tmp / "h.stream")
    assert len(s["chunks"]) == n and s["cell"]["lattice_type"] == "tetragonal"


def test_indexing_options_errors(indexed, tmp_path):
    _, run, _ = indexed
    bad = run_xlive(
        "process", str(run), "--out", str(tmp_path / "f.zarr"), "--cell", "79,79,38", check=False
    )
    assert bad.returncode == 2 and "six numbers" in bad.stderr
    bad = run_xlive(
        "process",
        str(run),
        "--out",
        str(tmp_path / "f.zarr"),
        "--space-group",
        "P 43 21 2",
        check=False,
    )
    assert bad.returncode == 2 and "--space-group needs --cell" in bad.stderr
    cfg = tmp_path / "run.toml"
    cfg.write_text("[indexing]\ncell = [79.1, 79.1, 37.9, 90, 90, 90]\nspace_group = 'P 7'\n")
    bad = run_xlive(
        "process", str(run), "--out", str(tmp_path / "f.zarr"), "--config", str(cfg), check=False
    )
    assert bad.returncode == 2 and "unknown space group" in bad.stderr
    cfg.write_text("[indexing]\ncel = [79.1, 79.1, 37.9, 90, 90, 90]\n")
    bad = run_xlive(
        "process", str(run), "--out", str(tmp_path / "f.zarr"), "--config", str(cfg), check=False
    )
    assert bad.returncode == 2 and "has no key 'cel' (did you mean 'cell'?)" in bad.stderr
    plain = tmp_path / "plain.zarr"
    run_xlive("process", str(run), "--out", str(plain), "--no-db", "-q", "--workers", "1")
    bad = run_xlive(
        "export-hits",
        str(plain),
        "--cxi",
        str(tmp_path / "x.cxi"),
        "--stream",
        str(tmp_path / "x.stream"),
        check=False,
    )
    assert bad.returncode == 2 and "--cell or --index" in bad.stderr


def test_hits_left_for_later_are_indexed_by_fill_in(indexed, tmp_path):
    _, run, full = indexed
    feats = tmp_path / "budget.zarr"
    run_xlive(
        "process",
        str(run),
        "--out",
        str(feats),
        "--cell",
        CELL,
        "--index-budget",
        "1e-6",
        "--workers",
        "1",
        "--no-db",
        "-q",
    )
    ds = open_features(feats)
    hit = ds["is_hit"].values
    assert hit.sum() >= 5 and not ds["index_tried"].values[hit].all()  # a sample only
    out = run_xlive(
        "process", str(run), "--out", str(feats), "--fill-in", "--workers", "1", "--no-db", "-q"
    ).stdout
    assert "hits left for later" in out
    ds, ref = open_features(feats), open_features(full)
    assert np.array_equal(ds["index_tried"].values, hit)
    np.testing.assert_array_equal(ds["n_lattices"].values, ref["n_lattices"].values)
    np.testing.assert_allclose(ds["unit_cell"].values, ref["unit_cell"].values, equal_nan=True)
