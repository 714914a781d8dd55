"""Score a spot finder against the simulator's truth: recall, precision, duplicates, artefacts.

Peaks and truth spots of a frame are paired one-to-one, closest pairs first, within ``radius``
pixels. Then:

* **recall**: paired truth spots among the *expected* ones (integrated SNR >= ``min_snr``, centre
  not masked, ``separation`` from a comparable neighbour >= ``min_separation``: 1 leaves out
  the ``blended`` ones, merged with a neighbour into one lump);
* **precision**: paired peaks among all peaks. A peak paired with any truth spot counts as real
  (also a weak, masked or blended one); a second peak on a spot already paired is a
  **duplicate** (a spot reported twice, e.g. split) and counts as false;
* **artefacts**: unpaired peaks within ``artefact_radius`` of a zinger or hot pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from .model import FrameTruth


@dataclass(frozen=True)
class SpotScore:
    recall: float
    precision: float
    #: expected truth spots (the recall's denominator)
    n_expected: int
    #: expected truth spots found
    n_found: int
    #: peaks reported
    n_peaks: int
    #: peaks paired with a truth spot
    n_real: int
    #: extra peaks on an already paired truth spot
    n_duplicates: int
    #: unpaired peaks on a zinger or hot pixel
    n_artefacts: int


def pair(peaks_xy: np.ndarray, truth_xy: np.ndarray, radius: float) -> np.ndarray:
    """For each peak, the index of its truth spot (one-to-one, closest first), or -1."""
    out = np.full(len(peaks_xy), -1, np.int64)
    if len(peaks_xy) == 0 or len(truth_xy) == 0:
        return out
    pairs = cKDTree(peaks_xy).sparse_distance_matrix(
        cKDTree(truth_xy), radius, output_type="ndarray"
    )
    taken = np.zeros(len(truth_xy), bool)
    order = np.argsort(pairs["v"], kind="stable")
    for p, t in zip(pairs["i"][order], pairs["j"][order], strict=True):
        if out[p] < 0 and not taken[t]:
            out[p] = t
            taken[t] = True
    return out


def score(
    peaks: Sequence[np.ndarray],
    truths: Sequence[FrameTruth],
    *,
    radius: float = 2.0,
    min_snr: float = 10.0,
    min_separation: float = 1.0,
    artefact_radius: float = 1.5,
) -> SpotScore:
    """Score peaks ((n, 2) arrays of x, y in array-index coordinates, one per frame)."""
    expected = found = n_peaks = real = dup = art = 0
    for xy, t in zip(peaks, truths, strict=True):
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        s = t.spots
        txy = np.stack([s["x"], s["y"]], axis=1)
        match = pair(xy, txy, radius)
        want = (s["snr"] >= min_snr) & ~s["masked"] & (s["separation"] >= min_separation)
        hit = np.zeros(len(txy), bool)
        hit[match[match >= 0]] = True
        expected += int(want.sum())
        found += int((hit & want).sum())
        n_peaks += len(xy)
        real += int((match >= 0).sum())
        free = xy[match < 0]
        if len(free) and len(txy):
            near = cKDTree(txy).query(free, distance_upper_bound=radius)[0]
            dup += int(np.isfinite(near).sum())
        a = t.artefacts
        if len(free) and len(a["x"]):
            d = cKDTree(np.stack([a["x"], a["y"]], axis=1)).query(
                free, distance_upper_bound=artefact_radius
            )[0]
            art += int(np.isfinite(d).sum())
    return SpotScore(
        recall=found / max(expected, 1),
        precision=real / max(n_peaks, 1),
        n_expected=expected,
        n_found=found,
        n_peaks=n_peaks,
        n_real=real,
        n_duplicates=dup,
        n_artefacts=art,
    )
