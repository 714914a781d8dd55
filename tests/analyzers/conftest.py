"""Helpers for the analyzer tests: matching found spots to the simulator's truth."""

from __future__ import annotations

import numpy as np


def match_spots(peaks_xy: np.ndarray, spots: dict, radius: float = 2.0):
    """(truth spots found, peaks that are real): within ``radius`` pixels.

    2 pixels: a spot cut by a module gap is found by its visible part, whose centroid sits up to
    ~2 pixels from the true centre; spots of one lattice are >= 10 pixels apart here.
    """
    tx, ty = spots["x"], spots["y"]
    if len(tx) == 0 or len(peaks_xy) == 0:
        return np.zeros(len(tx), bool), np.zeros(len(peaks_xy), bool)
    d = np.hypot(tx[:, None] - peaks_xy[None, :, 0], ty[:, None] - peaks_xy[None, :, 1])
    close = d <= radius
    return close.any(axis=1), close.any(axis=0)


def recall_precision(results, truths):
    """Recall over truth spots with SNR >= 10 (unmasked); precision over all peaks found."""
    found = strong = real = total = 0
    for peaks, t in zip(results, truths, strict=False):
        hit_t, ok_p = match_spots(peaks, t.spots)
        s = (t.spots["snr"] >= 10) & ~t.spots["masked"]
        found += np.count_nonzero(hit_t & s)
        strong += np.count_nonzero(s)
        real += np.count_nonzero(ok_p)
        total += len(ok_p)
    return found / max(strong, 1), real / max(total, 1), strong
