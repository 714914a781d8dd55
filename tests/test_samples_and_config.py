"""data-samples/ is what its README says (the documented command regenerates it) and every
example configuration in the repo loads."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import zarr
from xlive_testing import run_xlive

from xlive.config import load_config, parse_config
from xlive.errors import ConfigError
from xlive.simulate import read_truth

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data-samples" / "lysozyme-eiger500k"


def test_sample_is_small_and_complete():
    size = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert size <= 5 * 2**20
    g = zarr.open_group(str(SAMPLE / "run.zarr"), mode="r")
    assert g.attrs["frames_complete"] == g["frames"].shape[0] == 16
    truth = read_truth(SAMPLE / "truth.zarr")
    assert truth["hit"].any() and not truth["hit"].all()


@pytest.mark.slow
def test_documented_command_regenerates_the_sample(tmp_path):
    text = (REPO / "data-samples" / "README.md").read_text()
    cmd = re.search(r"```bash\n(xlive simulate .*?)\n```", text, re.S).group(1)
    args = shlex.split(cmd.replace("\\\n", " "))[1:]
    args[args.index("data-samples/lysozyme-eiger500k")] = str(tmp_path / "again")
    run_xlive(*args, "-q")
    a = zarr.open_group(str(SAMPLE / "run.zarr"), mode="r")
    b = zarr.open_group(str(tmp_path / "again" / "run.zarr"), mode="r")
    np.testing.assert_array_equal(a["frames"][:], b["frames"][:])
    np.testing.assert_array_equal(a["frame_number"][:], b["frame_number"][:])


EXAMPLES = sorted(
    p
    for top in ("data-samples", "notebooks", "binder", "docs")
    for p in (REPO / top).glob("**/*.toml")
)


def test_there_is_an_example_configuration():
    assert EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_configuration_loads(path):
    cfg = load_config(path)
    assert cfg.live.latency_budget > 0


def test_configuration_errors_say_what_is_allowed(tmp_path):
    with pytest.raises(ConfigError, match="allowed"):
        parse_config({"flags": {"jet_min": 0.2}})
    with pytest.raises(ConfigError, match="unknown table"):
        parse_config({"colours": {}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[live\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_geometry_overrides_apply():
    from xlive.geometry import Geometry

    g = Geometry.simple(
        shape=(10, 12),
        pixel_size=1e-4,
        distance=0.1,
        beam_center_x=6,
        beam_center_y=5,
        wavelength=1.0,
    )
    cfg = parse_config({"geometry": {"distance": 0.2, "beam_center_x": 3.5}})
    g2 = cfg.apply_geometry(g)
    assert g2.distance == 0.2 and g2.beam_center == (3.5, 5.0)
