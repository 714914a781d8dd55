"""Is the beam centre right? Compare the rings (water, ice, air) in opposite detector sectors.

With the right beam centre, a ring sits at the same radius in every direction. A centre off by
``(dx, dy)`` pixels moves the ring out by ``dx`` on one side and in by ``dx`` on the other, so
the radial profiles of the left and right sectors are shifted by ``2 dx`` against each other
(top and bottom by ``2 dy``). The shift is found by cross-correlating the profiles' radial
derivatives (edges carry the information; a flat background carries none), refined to a
fraction of a bin with a parabola through the correlation peak.
"""

from __future__ import annotations

import numpy as np

from ..geometry.core import Geometry
from .reducers import bin_image

SECTOR_HALF_WIDTH = np.radians(35.0)


def _binned_maps(geometry: Geometry, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = geometry.maps
    good = (~m.mask).astype(float)
    x = np.where(m.mask, 0.0, m.lab_x) / geometry.pixel_size
    y = np.where(m.mask, 0.0, m.lab_y) / geometry.pixel_size
    n = bin_image(good, f)
    with np.errstate(invalid="ignore", divide="ignore"):
        bx = bin_image(x, f) / n
        by = bin_image(y, f) / n
    return bx, by, n


def sector_profiles(
    image: np.ndarray, geometry: Geometry, factor: int, r_step: float | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Mean of a (binned) image per radius bin in the right/left/down/up sectors."""
    bx, by, n = _binned_maps(geometry, factor)
    r = np.hypot(bx, by)
    az = np.arctan2(by, bx)
    ok = (n > 0.5 * factor * factor) & np.isfinite(r)
    step = r_step or float(factor)
    edges = np.arange(0.0, np.nanmax(r[ok]) + step, step)
    idx = np.digitize(r, edges) - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        value = image / n  # mean per unbinned pixel
    out = {}
    for name, centre in (("right", 0.0), ("up", np.pi / 2), ("left", np.pi), ("down", -np.pi / 2)):
        d = np.angle(np.exp(1j * (az - centre)))
        sel = ok & (np.abs(d) < SECTOR_HALF_WIDTH) & np.isfinite(value)
        s = np.bincount(idx[sel], value[sel], minlength=len(edges))
        c = np.bincount(idx[sel], minlength=len(edges))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = np.where(c > 3, s / c, np.nan)[: len(edges) - 1]
    return 0.5 * (edges[:-1] + edges[1:]), out


def _smooth(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing that ignores NaN bins."""
    k = np.arange(-int(3 * sigma) - 1, int(3 * sigma) + 2)
    w = np.exp(-0.5 * (k / sigma) ** 2)
    ok = np.isfinite(a)
    num = np.convolve(np.where(ok, a, 0.0), w, mode="same")
    den = np.convolve(ok.astype(float), w, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, num / den, np.nan)


def _shift(
    a: np.ndarray, b: np.ndarray, max_shift: int, smooth: float = 2.0
) -> tuple[float, float]:
    """Shift s (bins) that best maps profile ``a(r)`` onto ``b(r + s)``, and the correlation."""
    a, b = _smooth(a, smooth), _smooth(b, smooth)
    ok = np.isfinite(a) & np.isfinite(b)
    ok[1:] &= ok[:-1]
    ga = np.where(ok, np.gradient(np.where(np.isfinite(a), a, 0.0)), 0.0)
    gb = np.where(ok, np.gradient(np.where(np.isfinite(b), b, 0.0)), 0.0)
    if not ga.any() or not gb.any():
        return float("nan"), 0.0
    lags = np.arange(-max_shift, max_shift + 1)
    cc = np.array(
        [
            np.sum(ga[max(0, -k) : len(ga) - max(0, k)] * gb[max(0, k) : len(gb) - max(0, -k)])
            for k in lags
        ]
    )
    i = int(np.argmax(cc))
    if 0 < i < len(cc) - 1:
        y0, y1, y2 = cc[i - 1], cc[i], cc[i + 1]
        den = y0 - 2 * y1 + y2
        frac = 0.5 * (y0 - y2) / den if den != 0 else 0.0
    else:
        frac = 0.0
    norm = np.sqrt(np.sum(ga * ga) * np.sum(gb * gb))
    return float(lags[i] + frac), float(cc[i] / norm) if norm > 0 else 0.0


def estimate_beam_offset(
    image: np.ndarray, geometry: Geometry, factor: int = 1, max_shift_px: float = 40.0
) -> tuple[float, float, float]:
    """``(dx, dy, quality)``: how far (pixels) the rings' centre lies from the beam centre.

    ``image`` is a mean image binned by ``factor``; quality is the weaker of the two
    correlation coefficients (near 1: clear rings; below ~0.5: too little structure to judge).
    """
    r, prof = sector_profiles(image, geometry, factor)
    step = r[1] - r[0] if len(r) > 1 else 1.0
    max_shift = max(2, int(max_shift_px / step))
    # rings centred at +dx from the assumed centre appear at R + dx on the +x side and at
    # R - dx on the -x side: the left profile is the right one shifted by -2 dx
    sx, qx = _shift(prof["right"], prof["left"], max_shift)
    sy, qy = _shift(prof["up"], prof["down"], max_shift)
    return -0.5 * sx * step, -0.5 * sy * step, min(qx, qy)
