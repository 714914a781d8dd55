"""SpotParams values that used to run out of memory or crash the finder are refused with
the parameter and its range; frames too thin for the spot fits are refused at construction."""

from __future__ import annotations

import numpy as np
import pytest

from xlive.analyzers.spots import SpotFinder, SpotParams
from xlive.errors import AnalyzerError
from xlive.geometry.core import Geometry


@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("bg_box", 100_000, "between 0 and 1024"),  # was ~30 GB in detect_blocks
        ("fit_split_radius", 10**7, "between 0 and 40"),  # was MemoryError in the fits
        ("max_found", 10**9, "between 1 and 1e+06"),
        ("max_candidates", 10**10, "between 1 and"),
        ("powder_ring_width", 0.0, ">= 0.5"),  # was ValueError in np.bincount
        ("powder_ring_width", -1.0, ">= 0.5"),  # was IndexError
        ("powder_sectors", 0, "between 1 and 3600"),  # was IndexError
        ("powder_sectors", -1, "between 1 and 3600"),
        ("powder_coverage", 1.5, "between 0 and 1"),
    ],
)
def test_out_of_range_names_parameter_and_range(key, value, allowed):
    with pytest.raises(AnalyzerError) as exc:
        SpotParams(**{key: value})
    msg = str(exc.value)
    assert msg.startswith(f"[analyzers.spots] {key} must be {allowed}"), msg


def strip(shape) -> tuple[Geometry, np.ndarray]:
    """A detector strip (one row or one column) with bright three-pixel spots."""
    geom = Geometry.simple(
        shape=shape,
        pixel_size=75e-6,
        distance=0.1,
        beam_center_x=shape[1] / 2,
        beam_center_y=shape[0] / 2,
        wavelength=1.0,
    )
    frames = np.random.default_rng(0).poisson(1, (2, *shape)).astype(np.uint16)
    flat = frames.reshape(2, -1)
    for c in centres(shape):
        flat[:, c - 1 : c + 2] = [2000, 5000, 2000]
    return geom, frames


def centres(shape) -> list[int]:
    return list(range(5, max(shape) - 5, 97))


@pytest.mark.parametrize("shape", [(1, 400), (400, 1)])
def test_one_pixel_high_frames(shape):
    geom, frames = strip(shape)
    kw = dict(method="integrated", ring_width=20.0, fit_min_pixels=1)
    with pytest.raises(AnalyzerError, match=r"frames of \d+ x \d+ pixels .* set fit_radius = 0"):
        SpotFinder(geom, SpotParams(**kw))  # fit_radius 4 (default): was IndexError per frame
    for p in (SpotParams(**kw, fit_radius=0), SpotParams(method="threshold", ring_width=20.0)):
        out = SpotFinder(geom, p)(frames)
        assert (out["n_spots"] >= 1).all()
        along = out["peak_x" if shape[0] == 1 else "peak_y"][0, : out["n_spots"][0]]
        off = np.abs(along[:, None] - (np.array(centres(shape)) + 0.5)).min(axis=1)
        assert (off < 1).all(), along  # on the spots
