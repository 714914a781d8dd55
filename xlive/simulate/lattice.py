"""Crystal lattices: unit cell -> reciprocal basis, random orientations, Bragg spot prediction.

Conventions: lab frame with +z along the beam; the incident wave vector is ``s0 = (0, 0, 1/λ)``
(1/Å). A reflection ``h`` of a crystal with orientation ``U`` has reciprocal vector
``r = U B h``; it diffracts when ``|s0 + r| ≈ 1/λ`` (Ewald sphere), within the excitation-error
width set by mosaicity and bandwidth. The diffracted ray ``s1 = s0 + r`` is traced to the
detector plane at distance ``D``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError


def reciprocal_basis(cell: tuple[float, float, float, float, float, float]) -> np.ndarray:
    """Busing-Levy B matrix (1/Å): columns are a*, b*, c* in the crystal's Cartesian frame."""
    a, b, c, al, be, ga = cell
    if min(a, b, c) <= 0:
        raise ConfigError(f"unit cell lengths must be > 0 angstrom, got {cell[:3]}")
    al, be, ga = np.radians([al, be, ga])
    ca, cb, cg = np.cos([al, be, ga])
    sg = np.sin(ga)
    vol2 = 1 - ca**2 - cb**2 - cg**2 + 2 * ca * cb * cg
    if vol2 <= 0:
        raise ConfigError(f"unit cell angles {cell[3:]} do not form a cell")
    # direct basis (a along x, b in the xy plane)
    avec = np.array([a, 0.0, 0.0])
    bvec = np.array([b * cg, b * sg, 0.0])
    cx = c * cb
    cy = c * (ca - cb * cg) / sg
    cz = np.sqrt(c**2 - cx**2 - cy**2)
    cvec = np.array([cx, cy, cz])
    direct = np.stack([avec, bvec, cvec], axis=1)
    return np.linalg.inv(direct).T  # columns a*, b*, c*


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix drawn uniformly (random unit quaternion)."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


@dataclass(frozen=True, eq=False)
class ReflectionSet:
    """All reflections of a cell down to a resolution limit, with fixed |F|² per hkl."""

    hkl: np.ndarray  # (n, 3) int
    rcryst: np.ndarray  # (n, 3) reciprocal vectors in the crystal frame, 1/Å
    d: np.ndarray  # (n,) Å
    intensity: np.ndarray  # (n,) |F|², Wilson (exponential) distributed, mean 1

    @classmethod
    def build(cls, cell, d_min: float, seed: int = 0) -> ReflectionSet:
        B = reciprocal_basis(cell)
        a, b, c = cell[:3]
        hmax, kmax, lmax = (int(np.ceil(x / d_min)) + 1 for x in (a, b, c))
        h, k, l_ = np.meshgrid(
            np.arange(-hmax, hmax + 1),
            np.arange(-kmax, kmax + 1),
            np.arange(-lmax, lmax + 1),
            indexing="ij",
        )
        hkl = np.stack([h.ravel(), k.ravel(), l_.ravel()], axis=1)
        hkl = hkl[np.any(hkl != 0, axis=1)]
        r = hkl @ B.T
        rlen = np.linalg.norm(r, axis=1)
        keep = rlen <= 1.0 / d_min
        hkl, r, rlen = hkl[keep], r[keep], rlen[keep]
        # |F|² fixed per hkl (Friedel mates equal), Wilson statistics for acentric data
        rng = np.random.default_rng([seed, 7919])
        key = np.abs(hkl) @ np.array([1, 1009, 1009 * 1009])
        uniq, inv = np.unique(key, return_inverse=True)
        intensity = rng.exponential(size=uniq.size)[inv]
        return cls(hkl=hkl.astype(np.int32), rcryst=r, d=1.0 / rlen, intensity=intensity)

    def candidates(
        self, u_z: np.ndarray, wavelength: float, mosaicity_deg: float, bandwidth: float
    ) -> np.ndarray:
        """Indices of the reflections that may lie within 3 excitation widths of the Ewald
        sphere for an orientation whose lab-z row is ``u_z`` (a superset of the exact test)."""
        key = (wavelength, mosaicity_deg, bandwidth)
        cache = self.__dict__.setdefault("_bounds", {})
        if key not in cache:
            k = 1.0 / wavelength
            rlen = 1.0 / self.d
            w = 3.0 * excitation_width(rlen, wavelength, mosaicity_deg, bandwidth)
            # |eps| < w  <=>  (k - w)^2 < k^2 + 2 k rz + r^2 < (k + w)^2, solved for rz
            lo = ((np.maximum(k - w, 0.0) ** 2 - k * k - rlen * rlen) / (2 * k)).astype(np.float32)
            hi = (((k + w) ** 2 - k * k - rlen * rlen) / (2 * k)).astype(np.float32)
            margin = np.float32(1e-5 * (1.0 + rlen.max()))  # >> float32 rounding of rz
            cache[key] = (self.rcryst.astype(np.float32), lo - margin, hi + margin)
        r32, lo, hi = cache[key]
        rz = r32 @ u_z.astype(np.float32)
        return np.flatnonzero((rz > lo) & (rz < hi))


def excitation_width(rlen, wavelength: float, mosaicity_deg: float, bandwidth: float):
    """Excitation-error width (1/Å) of reflections at 1/d = ``rlen``: the mosaic spread
    rotates r, the bandwidth spreads the Ewald sphere's radius."""
    return rlen * np.radians(mosaicity_deg) + 0.5 * bandwidth * rlen**2 * wavelength + 1e-6


@dataclass(frozen=True)
class SpotPrediction:
    hkl: np.ndarray
    d: np.ndarray
    x: np.ndarray  # array-index coordinates (pixel j's centre = j)
    y: np.ndarray
    partiality: np.ndarray
    intensity: np.ndarray  # |F|² of the reflection


def predict_spots(
    refl: ReflectionSet,
    U: np.ndarray,
    *,
    wavelength: float,
    distance: float,
    pixel_size: float,
    beam_center: tuple[float, float],
    shape: tuple[int, int],
    mosaicity_deg: float,
    bandwidth: float,
) -> SpotPrediction:
    """Spots of one crystal on a flat detector perpendicular to the beam."""
    k = 1.0 / wavelength
    # cheap pre-selection: only the z component of r is needed for the excitation error; a
    # float32 bound on it picks candidates, the exact test below decides
    cand = refl.candidates(U[2], wavelength, mosaicity_deg, bandwidth)
    rz = refl.rcryst[cand] @ U[2]
    rlen = 1.0 / refl.d[cand]
    eps = np.sqrt(k * k + 2.0 * k * rz + rlen * rlen) - k
    # excitation-error width: mosaic spread rotates r; bandwidth spreads the sphere radius
    sigma = excitation_width(rlen, wavelength, mosaicity_deg, bandwidth)
    near = np.abs(eps) < 3.0 * sigma
    idx = cand[np.nonzero(near)[0]]
    eps, sigma = eps[near], sigma[near]
    s1 = refl.rcryst[idx] @ U.T
    s1[:, 2] += k
    forward = s1[:, 2] > 0
    s1, eps, sigma, idx = s1[forward], eps[forward], sigma[forward], idx[forward]
    t = distance / s1[:, 2]
    bx, by = beam_center
    x = s1[:, 0] * t / pixel_size + bx - 0.5
    y = s1[:, 1] * t / pixel_size + by - 0.5
    ny, nx = shape
    inside = (x > -0.5) & (x < nx - 0.5) & (y > -0.5) & (y < ny - 0.5)
    idx = idx[inside]
    return SpotPrediction(
        hkl=refl.hkl[idx],
        d=refl.d[idx],
        x=x[inside],
        y=y[inside],
        partiality=np.exp(-0.5 * (eps[inside] / sigma[inside]) ** 2),
        intensity=refl.intensity[idx],
    )
