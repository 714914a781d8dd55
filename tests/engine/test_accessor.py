"""The ``ds.xlive`` accessor against numpy computed by hand on a small Dataset of known values."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xlive.engine.accessor  # noqa: F401  (registers Dataset.xlive)
from xlive.engine.store import BAD, DONE, PENDING, SKIPPED
from xlive.errors import ConfigError


@pytest.fixture
def ds():
    rng = np.random.default_rng(3)
    n, nq = 40, 6
    # frames out of order, as blocks of a live run finish
    frames = rng.permutation(n)
    status = np.full(n, DONE, np.uint8)
    status[[2, 7]] = BAD
    status[[11]] = SKIPPED
    status[[30]] = PENDING
    hit = rng.random(n) < 0.4
    prof = rng.random((n, nq)).astype(np.float32)
    prof[5, 2] = np.nan  # a masked bin in one frame
    q = np.linspace(0.5, 3.0, nq)
    return xr.Dataset(
        {
            "is_hit": ("frame", hit, {"long_name": "hit"}),
            "n_spots": ("frame", rng.integers(0, 50, n), {"long_name": "spots found"}),
            "radial_profile": (
                ("frame", "q"),
                prof,
                {"long_name": "radial profile", "units": "photons/pixel"},
            ),
        },
        coords={
            "frame": frames,
            "status": ("frame", status),
            "q": ("q", q, {"long_name": "scattering vector", "units": "1/nm"}),
            "d": ("q", 2 * np.pi / q * 10, {"long_name": "d-spacing", "units": "angstrom"}),
        },
    )


def test_done_and_hits(ds):
    st, hit = ds.status.values, ds.is_hit.values
    assert ds.xlive.done().frame.values.tolist() == ds.frame.values[st == DONE].tolist()
    want = ds.frame.values[(st == DONE) & hit]
    assert ds.xlive.hits().frame.values.tolist() == want.tolist()
    assert ds.xlive.status_counts() == {"pending": 1, "done": 36, "bad": 2, "skipped": 1}


def test_powder_is_the_nan_mean_of_the_hits(ds):
    sel = (ds.status.values == DONE) & ds.is_hit.values
    want = np.nanmean(ds.radial_profile.values[sel], axis=0)
    p = ds.xlive.powder()
    np.testing.assert_allclose(p.values, want, rtol=1e-6)
    assert p.dims == ("q",) and "d" in p.coords and p.attrs["n_frames"] == int(sel.sum())
    assert p.attrs["units"] == "photons/pixel" and "hits" in p.attrs["long_name"]
    all_done = np.nanmean(ds.radial_profile.values[ds.status.values == DONE], axis=0)
    np.testing.assert_allclose(ds.xlive.powder(hits_only=False).values, all_done, rtol=1e-6)


def test_hit_rate_is_in_frame_order(ds):
    w = 5
    rate = ds.xlive.hit_rate(w)
    done = ds.status.values == DONE
    order = np.argsort(ds.frame.values[done])
    hits = ds.is_hit.values[done][order].astype(float)
    want = [hits[max(0, i - w + 1) : i + 1].mean() for i in range(hits.size)]
    assert (np.diff(rate.frame.values) > 0).all()
    np.testing.assert_allclose(rate.values, want)
    assert rate.attrs["long_name"] == "hit rate over 5 frames" and "units" not in rate.attrs
    with pytest.raises(ConfigError, match="positive number of frames"):
        ds.xlive.hit_rate(0)


def test_missing_features_and_labels(ds):
    with pytest.raises(ConfigError, match="radial_profile"):
        ds.drop_vars("radial_profile").xlive.powder()
    assert ds.xlive.label("n_spots") == "spots found"
    assert ds.xlive.label("d") == "d-spacing [angstrom]"
    with pytest.raises(ConfigError, match="no such variable"):
        ds.xlive.label("nope")
