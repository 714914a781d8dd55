"""Where an indexed lattice puts its spots: rays to detector pixels, predicted reflections.

A reflection ``h`` of a lattice with orientation ``A`` (columns a*, b*, c*, 1/Å) has reciprocal
vector ``r = A h``; its diffracted ray runs along ``s0 + r`` (``s0 = (0, 0, 1/λ)``), which is
the direction from the Ewald sphere's centre through the lattice point, so a lattice point a
little off the sphere (a still's partial reflection) is drawn where its ray meets the detector.
"""

from __future__ import annotations

import numpy as np

from ..geometry import Geometry


def rays_to_pixels(geometry: Geometry, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Array-index pixel coordinates ``(x, y)`` where rays from the sample hit the detector.

    ``rays`` ``(n, 3)``: directions in the lab frame (any length). NaN where a ray misses every
    panel. Inverse of :meth:`Geometry.lab_positions` (pixel centres at integers).
    """
    rays = np.asarray(rays, dtype=np.float64).reshape(-1, 3)
    x = np.full(len(rays), np.nan)
    y = np.full(len(rays), np.nan)
    for p in geometry.panels:
        origin = np.array(p.lab(0.0, 0.0, geometry.distance))
        f = np.array(p.fs, float) * p.pixel_size
        s = np.array(p.ss, float) * p.pixel_size
        normal = np.cross(f, s)
        denom = rays @ normal
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (origin @ normal) / denom
        hit = np.isfinite(t) & (t > 0) & np.isnan(x)
        if not hit.any():
            continue
        rel = rays[hit] * t[hit, None] - origin
        gram = np.array([[f @ f, f @ s], [f @ s, s @ s]])
        uv = np.linalg.solve(gram, np.stack([rel @ f, rel @ s]))
        px = uv[0] - 0.5 + p.min_fs
        py = uv[1] - 0.5 + p.min_ss
        inside = (
            (px >= p.min_fs - 0.5)
            & (px < p.max_fs + 0.5)
            & (py >= p.min_ss - 0.5)
            & (py < p.max_ss + 0.5)
        )
        idx = np.flatnonzero(hit)[inside]
        x[idx] = px[inside]
        y[idx] = py[inside]
    return x, y


def spot_pixels(geometry: Geometry, orientation: np.ndarray, hkl: np.ndarray):
    """Predicted pixel ``(x, y)`` of reflections ``hkl`` ``(n, 3)`` of a lattice ``A``."""
    r = np.asarray(hkl, float) @ np.asarray(orientation, float).T
    rays = r + np.array([0.0, 0.0, 1.0 / geometry.wavelength])
    return rays_to_pixels(geometry, rays)


def predict_reflections(
    geometry: Geometry, orientation: np.ndarray, *, d_min: float, excitation: float = 0.002
) -> dict[str, np.ndarray]:
    """Reflections of lattice ``A`` within ``excitation`` (1/Å) of the Ewald sphere, on the detector.

    Returns ``h, k, l`` (int), ``x, y`` (pixels), ``d`` (Å) and ``excitation`` (signed distance
    of the lattice point from the sphere, 1/Å), for reflections with ``d >= d_min``.
    """
    a = np.asarray(orientation, float)
    k0 = 1.0 / geometry.wavelength
    basis = np.linalg.inv(a)  # rows a, b, c
    hmax = np.ceil(np.linalg.norm(basis, axis=1) / d_min).astype(int)
    hh, kk, ll = np.meshgrid(*(np.arange(-m, m + 1) for m in hmax), indexing="ij")
    hkl = np.stack([hh.ravel(), kk.ravel(), ll.ravel()], axis=1)
    r = hkl @ a.T
    rlen = np.linalg.norm(r, axis=1)
    s = r + np.array([0.0, 0.0, k0])
    exc = np.linalg.norm(s, axis=1) - k0
    keep = (rlen > 0) & (rlen <= 1.0 / d_min) & (np.abs(exc) <= excitation)
    hkl, s, exc, rlen = hkl[keep], s[keep], exc[keep], rlen[keep]
    x, y = rays_to_pixels(geometry, s)
    on = np.isfinite(x)
    return {
        "h": hkl[on, 0],
        "k": hkl[on, 1],
        "l": hkl[on, 2],
        "x": x[on],
        "y": y[on],
        "d": 1.0 / rlen[on],
        "excitation": exc[on],
    }
