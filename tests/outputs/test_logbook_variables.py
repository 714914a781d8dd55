"""Run variables: user columns of the logbook, computed per run, re-computed when the file changes."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
from xlive_testing import run_xlive

from xlive.engine.store import open_features
from xlive.errors import ConfigError
from xlive.outputs.logbook import logbook_frame, refresh_variables
from xlive.outputs.logbook_db import LogbookDB
from xlive.outputs.rundb import record_run
from xlive.outputs.variables import evaluate, load_variables, run_variable, to_cell

VARS = textwrap.dedent("""
    import numpy as np
    import xlive

    @xlive.run_variable(title="Hit rate at d < 2.5 Å", cheap=True)
    def hires_hit_rate(ds):
        return float((ds.is_hit & (ds.d_min < 2.5)).mean())

    @xlive.run_variable(title="Spots per frame, histogram")
    def spots_hist(ds):
        return np.histogram(ds.n_spots.values, bins=[0, 5, 20, 1000])[0]

    @xlive.run_variable(title="Laser-on frames")
    def laser_on_frames(ds, metadata):
        return int(metadata.laser_on.sel(frame=ds.frame).sum())

    @xlive.run_variable
    def label(ds):
        return "lysozyme"

    @xlive.run_variable(title="Broken")
    def broken(ds):
        return ds.no_such_feature.mean()
""")


def _runs_json(db, variables):
    out = run_xlive("runs", "--db", str(db), "--variables", str(variables), "--format", "json")
    return {r["run"]: r for r in json.loads(out.stdout)}


def test_runs_lists_each_variable_per_run(processed, tmp_path):
    db = tmp_path / "runs.sqlite"
    record_run(db, processed.features)
    record_run(db, processed.features, run="second")
    vars_py = tmp_path / "vars.py"
    vars_py.write_text(VARS)

    rows = _runs_json(db, vars_py)
    assert set(rows) == {str(processed.run.absolute() / "run.zarr"), "second"}
    ds = open_features(processed.features)
    hit, dmin = ds.is_hit.values, ds.d_min.values
    counts = [
        int(((ds.n_spots.values >= a) & (ds.n_spots.values < b)).sum())
        for a, b in ((0, 5), (5, 20), (20, 1000))
    ]
    for row in rows.values():
        assert row["hires_hit_rate"] == pytest.approx(np.mean(hit & (dmin < 2.5)))
        assert row["spots_hist"] == counts
        assert row["laser_on_frames"] == int(ds.laser_on.values.sum()) > 0
        assert row["label"] == "lysozyme"
        # the error stays in its cell; the other variables are there
        assert row["broken"] is None and "no_such_feature" in row["errors"]["broken"]
        assert row["hits"] == int(hit.sum()) and row["analysed"] == ds.sizes["frame"]

    # the table shows the error in its cell, the rest goes on
    table = run_xlive("runs", "--db", str(db), "--variables", str(vars_py)).stdout
    assert "error: AttributeError" in table and "lysozyme" in table

    # exported as Markdown: the variables' titles head their columns, errors in their cells
    run_xlive(
        "runs", "--db", str(db), "--variables", str(vars_py), "--export", str(tmp_path / "lb.md")
    )
    md = (tmp_path / "lb.md").read_text().splitlines()
    assert "Hit rate at d < 2.5 Å" in md[0] and len(md) == 4
    assert all("error: AttributeError" in line for line in md[2:])
    bad = run_xlive("runs", "--db", str(db), "--export", str(tmp_path / "x.doc"), check=False)
    assert bad.returncode == 2 and ".csv, .xlsx or .md" in bad.stderr

    # the file changes: every past run gets the new values; without --variables they stay
    vars_py.write_text(VARS.replace('return "lysozyme"', 'return "thaumatin"'))
    rows = _runs_json(db, vars_py)
    assert {r["label"] for r in rows.values()} == {"thaumatin"}
    plain = json.loads(run_xlive("runs", "--db", str(db), "--format", "json").stdout)
    assert {r["label"] for r in plain} == {"thaumatin"}


def test_only_stale_runs_are_recomputed(processed, tmp_path):
    db = tmp_path / "runs.sqlite"
    vars_py = tmp_path / "v.py"
    vars_py.write_text(VARS)
    vs = load_variables(vars_py)
    record_run(db, processed.features, run="a")
    with LogbookDB(db) as logdb:
        assert refresh_variables(logdb, vs) == ["a"]
        assert refresh_variables(logdb, vs) == []  # nothing changed
        record_run(db, processed.features, run="b")
        assert refresh_variables(logdb, vs) == ["b"]
        record_run(db, processed.features, run="a")  # reprocessed: its values are redone
        assert refresh_variables(logdb, vs) == ["a"]
        df = logbook_frame(logdb, vs)
    assert list(df["run"]) == ["a", "b"] or set(df["run"]) == {"a", "b"}
    assert df.attrs["titles"]["hires_hit_rate"] == "Hit rate at d < 2.5 Å"


def test_bad_variables_files_say_what_is_wrong(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_variables(tmp_path / "none.py")
    p = tmp_path / "syntax.py"
    p.write_text("import xlive\n\n@xlive.run_variable\ndef f(ds:\n")
    with pytest.raises(ConfigError, match="line 4"):
        load_variables(p)
    p.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="no @xlive.run_variable"):
        load_variables(p)
    p.write_text("import xlive\n\n@xlive.run_variable\ndef hit_rate(ds):\n    return 1\n")
    with pytest.raises(ConfigError, match="built-in"):
        load_variables(p)


def test_cells_hold_numbers_strings_and_small_arrays():
    assert to_cell(np.float32(0.5)) == 0.5 and to_cell(np.int64(3)) == 3
    assert to_cell(float("nan")) is None and to_cell("x") == "x" and to_cell(True) is True
    assert to_cell(np.arange(3)) == [0, 1, 2] and to_cell(np.array(2.0)) == 2.0
    with pytest.raises(TypeError, match="at most"):
        to_cell(np.zeros(5000))
    with pytest.raises(TypeError, match="number, a string"):
        to_cell(object())

    @run_variable(cheap=True)
    def one(ds):
        return ds["x"]

    @run_variable(title="T")
    def two(ds, metadata):
        return metadata["y"] + ds["x"]

    from xlive.outputs.variables import VariableSet

    vs = VariableSet("mem", "0", (one.__xlive_variable__, two.__xlive_variable__))
    assert vs.cheap().names == ["one"] and vs.titles == {"one": "one", "two": "T"}
    calls = []
    res = evaluate(vs, {"x": 1}, lambda: calls.append(1) or {"y": 2})
    assert res == {"one": (1, None), "two": (3, None)} and calls == [1]
    assert evaluate(vs.cheap(), {"x": 1}, lambda: calls.append(1))["one"] == (1, None)
    assert calls == [1]  # metadata is only read when a variable asks for it


def test_config_names_the_variables_file(tmp_path):
    from xlive.config import load_config

    cfg = tmp_path / "run.toml"
    cfg.write_text('[logbook]\nvariables = "vars.py"\n')
    assert load_config(cfg).logbook["variables"] == str(tmp_path / "vars.py")
    cfg.write_text('[logbook]\nvariable = "vars.py"\n')
    with pytest.raises(ConfigError, match="allowed: variables"):
        load_config(cfg)
