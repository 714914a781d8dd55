"""The footprint spot model: per-spot widths, radial bandwidth streaks, truth SNR per footprint.

Switched on by ``SimParams.spot_sigma_range`` (the ``"hard"`` preset). Each spot is a 2-D
Gaussian of ``photons`` expected photons centred on its predicted position:

* tangential width ``sigma_t``: drawn uniformly in ``spot_sigma_range`` (pixels);
* radial width ``sigma_r = hypot(sigma_t, streak)``, where with ``streaks`` the beam's relative
  bandwidth ``b`` spreads the Bragg angle: ``d(2θ) = 2 tan θ · b`` and on a flat detector at
  distance ``D`` the radius by ``streak = D sec²(2θ) · 2 tan θ · b / pixel`` (``b`` taken as a
  Gaussian σ; no streaks: ``sigma_r = sigma_t``).

The spot's photons are drawn one by one (a Poisson number, Gaussian positions), so each pixel
records the Gaussian integrated over its area. For the truth, the expected photons of a pixel
are computed as the Gaussian of covariance ``Σ + I/12`` (the pixel's box convolved in) at the
pixel centre: within 1 % of the exact pixel integral for σ >= 1 px.

**Integrated SNR** (truth ``snr``). The footprint ``F`` of a spot is the set of unmasked pixels
whose centre lies inside the ellipse of Mahalanobis radius 2 of the pixel-integrated profile
(``dᵀ (Σ + I/12)⁻¹ d <= 4``, which holds 1 - e⁻² ≈ 86 % of the photons; always at least the
pixel under the centre). With ``S`` the spot's expected photons on ``F``, ``B`` the expected
background photons on ``F`` (this frame's pulse energy) and ``r`` the read noise in photons
(0 on photon-counting detectors)::

    snr = S / sqrt(S + B + |F| r²)

the significance of the background-subtracted sum over the footprint. Neighbours' photons are
not counted in ``S`` or ``B``. Truth also records ``signal`` (``S``), ``npix`` (``|F|``),
``sigma_r``, ``sigma_t``, ``separation``: the distance to the nearest other spot of the frame
with at least half this spot's ``S``, in units of ``σ_i(u) + σ_j(u)`` (the two widths along
the line ``u`` joining them), and ``blended = separation < 1``: below it two Gaussians' sum
has no saddle between them (one lump, not two; two equal spots show a ~20 % dip from 1.35).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

#: Mahalanobis radius of the footprint (1 - exp(-2) ≈ 86 % of the photons inside)
FOOTPRINT_RADIUS = 2.0


def streak_sigma(
    x: np.ndarray,
    y: np.ndarray,
    *,
    beam_xy: tuple[float, float],
    distance: float,
    pixel_size: float,
    bandwidth: float,
) -> np.ndarray:
    """Radial σ (pixels) the beam's relative bandwidth adds at array-index positions x, y."""
    r = np.hypot(x - beam_xy[0], y - beam_xy[1]) * pixel_size
    two_theta = np.arctan2(r, distance)
    return distance / np.cos(two_theta) ** 2 * 2.0 * np.tan(two_theta / 2) * bandwidth / pixel_size


def covariances(
    x: np.ndarray,
    y: np.ndarray,
    sigma_r: np.ndarray,
    sigma_t: np.ndarray,
    beam_xy: tuple[float, float],
) -> np.ndarray:
    """(n, 2, 2) covariances (pixel², x-y order) with ``sigma_r`` along the radius."""
    dx, dy = x - beam_xy[0], y - beam_xy[1]
    r = np.hypot(dx, dy)
    ux = np.where(r > 0, dx / np.where(r > 0, r, 1.0), 1.0)
    uy = np.where(r > 0, dy / np.where(r > 0, r, 1.0), 0.0)
    vr, vt = sigma_r**2, sigma_t**2
    cov = np.empty((len(x), 2, 2))
    cov[:, 0, 0] = vr * ux * ux + vt * uy * uy
    cov[:, 1, 1] = vr * uy * uy + vt * ux * ux
    cov[:, 0, 1] = cov[:, 1, 0] = (vr - vt) * ux * uy
    return cov


def _groups(half: np.ndarray, max_pixels: int):
    """(half-size, spot indices) groups of at most ``max_pixels`` window pixels each."""
    for h in np.unique(half):
        idx = np.flatnonzero(half == h)
        per = max(1, max_pixels // (2 * int(h) + 1) ** 2)
        for start in range(0, len(idx), per):
            yield int(h), idx[start : start + per]


def footprints(
    x: np.ndarray,
    y: np.ndarray,
    photons: np.ndarray,
    cov: np.ndarray,
    shape: tuple[int, int],
    max_pixels: int = 1_000_000,
):
    """Expected photons of each spot on the pixels of its footprint ellipse.

    Yields, per group of spots sharing a window size, ``(index, flat, lam, ok)``: the spots'
    indices (m,), flat pixel indices (m, w*w) of a window holding the ellipse, the spot's
    expected photons there (m, w*w), and whether the pixel is on the detector and inside the
    ellipse (the caller takes the masked pixels out).
    """
    ny, nx = shape
    pcov = cov + np.eye(2) / 12.0  # the pixel's box convolved in
    det = pcov[:, 0, 0] * pcov[:, 1, 1] - pcov[:, 0, 1] ** 2
    # (a, b, c) of the precision matrix [[a, b], [b, c]]
    inv = np.stack([pcov[:, 1, 1] / det, -pcov[:, 0, 1] / det, pcov[:, 0, 0] / det], axis=1)
    # the ellipse's extent along x and y: R sqrt(cov_xx), R sqrt(cov_yy)
    half = np.ceil(FOOTPRINT_RADIUS * np.sqrt(np.maximum(pcov[:, 0, 0], pcov[:, 1, 1]))) + 1
    half = half.astype(np.int64)
    x0, y0 = np.rint(x).astype(np.int64), np.rint(y).astype(np.int64)
    for h, idx in _groups(half, max_pixels):
        off = np.arange(-h, h + 1)
        oy, ox = (a.ravel() for a in np.meshgrid(off, off, indexing="ij"))
        px = x0[idx, None] + ox[None, :]
        py = y0[idx, None] + oy[None, :]
        dx = px - x[idx, None]
        dy = py - y[idx, None]
        a, b, c = (inv[idx, k, None] for k in range(3))
        m2 = a * dx * dx + 2.0 * b * dx * dy + c * dy * dy
        norm = photons[idx] / (2.0 * np.pi * np.sqrt(det[idx]))
        lam = norm[:, None] * np.exp(-0.5 * m2)
        inside = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
        flat = np.where(inside, py * nx + px, 0)
        in_fp = (m2 <= FOOTPRINT_RADIUS**2) | ((ox == 0) & (oy == 0))[None, :]
        yield idx, flat, lam, inside & in_fp


def draw_photons(
    rng: np.random.Generator,
    x: np.ndarray,
    y: np.ndarray,
    photons: np.ndarray,
    cov: np.ndarray,
    shape: tuple[int, int],
) -> np.ndarray:
    """Flat pixel index of every photon of the spots (Poisson numbers, Gaussian positions).

    Drawing photons one by one (rather than a Poisson count per window pixel) costs in
    proportion to the photons, not to the windows, and gives each pixel exactly the Gaussian
    integrated over its area. Photons falling off the detector are dropped.
    """
    counts = rng.poisson(photons)
    chol = np.linalg.cholesky(cov)
    who = np.repeat(np.arange(len(x)), counts)
    z0, z1 = rng.standard_normal((2, len(who)))
    # pixel j covers [j - 0.5, j + 0.5)
    px = np.floor(x[who] + chol[:, 0, 0][who] * z0 + 0.5).astype(np.int64)
    py = np.floor(y[who] + chol[:, 1, 0][who] * z0 + chol[:, 1, 1][who] * z1 + 0.5)
    py = py.astype(np.int64)
    ny, nx = shape
    on = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
    return py[on] * nx + px[on]


def separation(x: np.ndarray, y: np.ndarray, signal: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Distance to the nearest neighbour with >= half the spot's signal, in units of the sum
    of the two widths along the line joining them (exact below 2; inf without a neighbour
    within 4 times the frame's largest width). Below 1
    the pair's summed profile has no saddle: one lump (``blended``); the dip between two
    equal spots deepens past ~1.35 (about 20 %)."""
    n = len(x)
    out = np.full(n, np.inf)
    if n < 2:
        return out
    big = np.sqrt(np.maximum(cov[:, 0, 0], cov[:, 1, 1]) + np.abs(cov[:, 0, 1]))
    reach = 4.0 * big.max()
    pairs = cKDTree(np.stack([x, y], axis=1)).query_pairs(reach, output_type="ndarray")
    i = np.concatenate([pairs[:, 0], pairs[:, 1]])
    j = np.concatenate([pairs[:, 1], pairs[:, 0]])
    dx, dy = x[j] - x[i], y[j] - y[i]
    d = np.hypot(dx, dy)
    ux, uy = dx / np.maximum(d, 1e-9), dy / np.maximum(d, 1e-9)

    def along(k):
        return np.sqrt(cov[k, 0, 0] * ux * ux + 2 * cov[k, 0, 1] * ux * uy + cov[k, 1, 1] * uy * uy)

    comparable = signal[j] >= 0.5 * signal[i]
    np.minimum.at(out, i[comparable], (d / (along(i) + along(j)))[comparable])
    return out
