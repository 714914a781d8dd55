"""Kernels that bin pixels by a precomputed index map (numba), each beside a numpy reference.

* :func:`bin_sums` — per-bin sum of valid pixel values (the radial profile's per-frame work on
  float frames; integer frames use :func:`~.runs.run_sums`).
* :func:`ring_histograms` — one pass that fills, per ring, a histogram of pixel values (exact for
  integer counts below ``n_hist - 1``; larger values go to an overflow bin with their sum and sum
  of squares), counts saturated pixels and records candidate pixels above a level. Iterative
  sigma clipping then runs on the histograms (:func:`clipped_stats`) without touching pixels
  again, so any number of clipping iterations costs one read of the frame.
* :func:`radial_ring_pass_int` — the radial sums, the ring histograms and candidates (and the
  integrated spot finder's block sums) of an integer frame in one read: pixels are grouped by
  (ring, radial bin) *piece* (:class:`PixelPieces`), the pass counts the common low values
  per piece and :func:`piece_totals` turns the counts into ring histograms and radial sums.

Index maps hold -1 for pixels to ignore. Pixel values outside ``[lo, hi]`` (gap markers, NaN) are
skipped. Written by hand: no library bins by an arbitrary index map with this fusion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

_JIT = dict(cache=True, nogil=True)


# --------------------------------------------------------------------------- bin sums
@numba.njit(**_JIT)
def bin_sums(frame, bins, weights, lo, hi, sums, lost):
    """Add valid pixel values into ``sums[bins]``; add ``weights`` of invalid pixels to ``lost``."""
    ny, nx = frame.shape
    for i in range(ny):
        for j in range(nx):
            b = bins[i, j]
            if b < 0:
                continue
            v = frame[i, j]
            if v >= lo and v <= hi:
                sums[b] += v
            else:
                lost[b] += weights[i, j]


def bin_sums_ref(frame, bins, weights, lo, hi, n_bins):
    """Numpy reference of :func:`bin_sums`: returns ``(sums, lost)``."""
    v = frame.astype(np.float64).ravel()
    b = bins.ravel()
    use = b >= 0
    ok = (v >= lo) & (v <= hi)
    sums = np.bincount(b[use & ok], weights=v[use & ok], minlength=n_bins)
    lost = np.bincount(b[use & ~ok], weights=weights.ravel()[use & ~ok], minlength=n_bins)
    return sums, lost


# --------------------------------------------------------------------------- ring histograms
@numba.njit(**_JIT)
def ring_histograms(frame, rings, lo, hi, vmin, scale, sat, cand_level, step, hist, ovf, cand):
    """Fill ``hist[ring, value_bin]``; return ``(n_candidates, n_saturated, total)``.

    Visits every ``step``-th row and column. ``ovf[ring]`` accumulates (count, sum, sum of
    squares) of values in the last histogram bin; flat indices of pixels with value >
    ``cand_level`` go to ``cand`` while it has room (the returned count keeps counting, so a
    caller can tell that the buffer overflowed). Float frames: value bin
    ``floor((v - vmin) * scale)``, clamped to the histogram.
    """
    ny, nx = frame.shape
    nh = hist.shape[1]
    top = nh - 1
    nc = 0
    nsat = 0
    total = 0.0
    ncap = cand.shape[0]
    for i in range(0, ny, step):
        for j in range(0, nx, step):
            r = rings[i, j]
            if r < 0:
                continue
            v = frame[i, j]
            if not (v >= lo and v <= hi):
                continue
            fv = np.float64(v)
            total += fv
            k = int((fv - vmin) * scale)
            if k < 0:
                k = 0
            if k >= top:
                hist[r, top] += 1
                ovf[r, 0] += 1.0
                ovf[r, 1] += fv
                ovf[r, 2] += fv * fv
            else:
                hist[r, k] += 1
            if fv >= sat:
                nsat += 1
            if fv > cand_level:
                if nc < ncap:
                    cand[nc] = i * nx + j
                nc += 1
    return nc, nsat, total


@numba.njit(inline="always", **_JIT)
def _int_levels(top, sat, cand_level):
    """Integer saturation and candidate levels of the integer ring pass, and the fast-path
    level below which a pixel only increments its histogram bin."""
    isat = np.int64(min(sat, 9.2e18))
    icand = np.int64(np.floor(min(cand_level, 9.2e18)))
    return isat, icand, min(icand, top - 1, isat - 1)


@numba.njit(inline="always", **_JIT)
def _tally_high(r, v, flat, top, isat, icand, hist, ovf, cand, nsat, nc):
    """The rare path of :func:`ring_histograms_int`: a pixel above the fast-path level goes to its histogram bin or the overflow sums, counts as
    saturated, and is recorded as a spot candidate. Returns the updated ``(nsat, nc)``."""
    if v >= top:
        hist[r, top] += 1
        ovf[r, 0] += 1.0
        ovf[r, 1] += v
        ovf[r, 2] += float(v) * v
    else:
        hist[r, v] += 1
    if v >= isat:
        nsat += 1
    if v > icand:
        if nc < cand.shape[0]:
            cand[nc] = flat
        nc += 1
    return nsat, nc


@numba.njit(**_JIT)
def ring_histograms_int(frame, rings, lo, hi, vmin, scale, sat, cand_level, step, hist, ovf, cand):
    """:func:`ring_histograms` for integer frames (value bin = value; ``vmin``, ``scale`` unused).

    Integer arithmetic throughout and an early exit for the common low pixel: about 1.6 times
    faster on photon-counting frames.
    """
    ny, nx = frame.shape
    top = hist.shape[1] - 1
    ilo = np.int64(lo)
    ihi = np.int64(min(hi, 9.2e18))
    isat, icand, ifast = _int_levels(top, sat, cand_level)
    nc = 0
    nsat = 0
    total = 0
    for i in range(0, ny, step):
        fi = frame[i]
        ri = rings[i]
        for jj in range((nx + step - 1) // step):
            j = jj * step
            r = ri[j]
            v = np.int64(fi[j])
            if r < 0 or v > ihi or v < ilo:
                continue
            total += v
            if v <= ifast:
                hist[r, v] += 1
                continue
            nsat, nc = _tally_high(r, v, i * nx + j, top, isat, icand, hist, ovf, cand, nsat, nc)
    return nc, nsat, float(total)


def ring_histograms_ref(frame, rings, lo, hi, vmin, scale, sat, cand_level, step, n_rings, n_hist):
    """Numpy reference of :func:`ring_histograms`: ``(hist, ovf, cand, n_saturated, total)``."""
    sub = np.zeros(frame.shape, bool)
    sub[::step, ::step] = True
    v = frame.astype(np.float64).ravel()
    r = rings.ravel().astype(np.int64)
    use = (r >= 0) & (v >= lo) & (v <= hi) & sub.ravel()
    idx = np.flatnonzero(use)
    v, r = v[use], r[use]
    k = np.clip(np.floor((v - vmin) * scale), 0, n_hist - 1).astype(np.int64)
    hist = np.bincount(r * n_hist + k, minlength=n_rings * n_hist).reshape(n_rings, n_hist)
    top = k == n_hist - 1
    ovf = np.stack(
        [
            np.bincount(r[top], minlength=n_rings).astype(float),
            np.bincount(r[top], weights=v[top], minlength=n_rings),
            np.bincount(r[top], weights=v[top] ** 2, minlength=n_rings),
        ],
        axis=1,
    )
    cand = idx[v > cand_level]
    return hist, ovf, cand, int(np.count_nonzero(v >= sat)), float(v.sum())


# --------------------------------------------------------------------------- clipping
@numba.njit(**_JIT)
def clipped_stats(
    hist, ovf, vmin, width, offset, clip, min_excess, max_iter, mean, sigma, count, bound
):
    """Iterative sigma clipping per ring on its histogram; fills ``mean``, ``sigma``, ``count``.

    ``bound[r]``: no bin of ring ``r`` above it holds a value (the top bin is the overflow,
    read from ``ovf``): a fused pass knows it (:func:`radial_ring_pass_int`), else
    ``hist.shape[1] - 1``.

    Start from all values; keep values ``<= mean + max(clip * sigma, min_excess)``; repeat until
    the kept set stops changing (or ``max_iter``). ``min_excess`` (1 for counting detectors)
    keeps clipping from eating the legitimate ones of a ring whose mean is far below one count. A value bin ``k`` stands for ``vmin + (k + offset) *
    width``. Overflow values (last bin) enter with their exact sums while the limit is above
    both the overflow edge and their mean (an approximation: they are not told apart), and are
    dropped otherwise — so a hot pixel far above the others is always clipped.
    """
    n_rings, nh = hist.shape
    top = nh - 1
    edge = vmin + top * width
    for r in range(n_rings):
        kb = top  # value bins kept
        # bins above the last filled one add nothing: the sums below stop there
        last = min(top - 1, bound[r])
        while last >= 0 and hist[r, last] == 0:
            last -= 1
        with_ovf = True
        m = np.nan
        s = np.nan
        n = 0.0
        for _ in range(max_iter):
            n = 0.0
            s1 = 0.0
            s2 = 0.0
            for k in range(min(kb, last + 1)):
                c = hist[r, k]
                if c:
                    val = vmin + (k + offset) * width
                    n += c
                    s1 += c * val
                    s2 += c * val * val
            if with_ovf:
                n += ovf[r, 0]
                s1 += ovf[r, 1]
                s2 += ovf[r, 2]
            if n <= 0:
                m = np.nan
                s = np.nan
                break
            m = s1 / n
            var = s2 / n - m * m
            s = np.sqrt(var) if var > 0 else 0.0
            limit = m + max(clip * s, min_excess)
            # bins k with vmin + (k + offset) * width <= limit
            kb_new = int(np.floor((limit - vmin) / width - offset)) + 1
            kb_new = min(max(kb_new, 0), top)
            # overflow values enter while the limit is above the overflow edge and their mean
            ovf_new = limit > edge and (ovf[r, 0] == 0 or ovf[r, 1] / ovf[r, 0] <= limit)
            if kb_new == kb and ovf_new == with_ovf:
                break
            kb = kb_new
            with_ovf = ovf_new
        mean[r] = m
        sigma[r] = s
        count[r] = n


def clipped_stats_ref(values_per_ring, clip, min_excess, max_iter):
    """Numpy reference of the clipping on raw values: list of arrays -> (mean, sigma, count)."""
    out = np.full((len(values_per_ring), 3), np.nan)
    for r, v in enumerate(values_per_ring):
        limit = np.inf
        m = s = np.nan
        n = 0
        for _ in range(max_iter):
            kept = v[v <= limit]
            n = kept.size
            if n == 0:
                m = s = np.nan
                break
            m = kept.mean()
            s = kept.std()
            new = m + max(clip * s, min_excess)
            if np.count_nonzero(v <= new) == n:
                break
            limit = new
        out[r] = (m, s, n)
    return out[:, 0], out[:, 1], out[:, 2]


# --------------------------------------------------------------------------- fused pass
#: a pixel's count in the packed block sums (values stay below: < 2**40 over a block)
_COUNT = np.uint64(1) << np.uint64(48)


@dataclass(frozen=True)
class PixelPieces:
    """Pixels grouped by (ring, radial bin) pair, for the fused pass.

    ``map[i, j]``: the piece of a pixel; a pixel in neither a ring nor a bin gets the spare
    piece ``n = ring.size``, whose row of the counts (:meth:`empty`) the pass fills and nobody
    reads, so its common case needs no test for it. ``ring`` and ``bin``: each piece's ring
    and radial bin (-1: none). Pieces with a ring come first (``ring[:n_ring] >= 0``), ordered
    by ring, so a pixel is in a ring exactly when its piece is below ``n_ring``.
    """

    map: np.ndarray
    ring: np.ndarray
    bin: np.ndarray
    n_ring: int

    @classmethod
    def build(cls, rings: np.ndarray, bins: np.ndarray) -> PixelPieces:
        """Pieces of a ring index map and a radial bin map (-1: ignore; same shape)."""
        r = rings.astype(np.int64)
        b = bins.astype(np.int64)
        nb = int(b.max(initial=-1)) + 2  # bin + 1 in 0..nb-1
        nr = int(r.max(initial=-1)) + 1
        # keys: in-ring pieces by (ring, bin), then ring-less pieces by bin
        key = np.where(r >= 0, r * nb + b + 1, nr * nb + b + 1)
        key[(r < 0) & (b < 0)] = -1
        used = np.zeros(max(nr + 1, 1) * nb, bool)
        used[key[key >= 0]] = True
        ids = np.cumsum(used) - 1
        keys = np.flatnonzero(used)
        n = keys.size
        dtype = np.uint16 if n < 2**16 - 1 else np.uint32
        pmap = np.where(key >= 0, ids[np.maximum(key, 0)], n).astype(dtype)
        ring = np.where(keys < nr * nb, keys // nb, -1)
        return cls(pmap, ring, keys % nb - 1, int(np.count_nonzero(ring >= 0)))

    def empty(self, width: int = 8) -> np.ndarray:
        """Zeroed per-piece counts of the values ``0 .. width - 1`` for one frame (and a
        row for the spare piece)."""
        return np.zeros((self.ring.size + 1, width), np.int32)


@numba.njit(**_JIT)
def radial_ring_pass_int(
    frame,
    pieces,
    piece_ring,
    piece_bin,
    n_ring,
    weights,
    hi,
    sat,
    cand_level,
    counts,
    sums,
    lost,
    hist,
    ovf,
    hmax,
    cand,
    b,
    bsum,
    bn,
):
    """:func:`~.runs.run_sums` (radial bins), :func:`ring_histograms_int` (step 1, values in
    ``[0, hi]``) and, with ``b > 0``, :func:`~.blocks.block_sums` in one read of the frame.

    ``pieces``, ``piece_ring``, ``piece_bin``, ``n_ring``: a :class:`PixelPieces`, ``counts``
    its :meth:`~PixelPieces.empty`. Per pixel the common case is one test and one increment:
    ``counts[piece, value]`` for a valid value below ``counts.shape[1]`` (which must be below
    ``hist.shape[1] - 1``), in the spare piece's row for a pixel in no piece. Higher values, saturated
    pixels, candidates (flat indices, raster order, of in-ring pixels above ``cand_level``)
    and invalid values (whose ``weights`` go to ``lost`` of their bin) take one rarely taken
    branch. Afterwards :func:`piece_totals` adds the counts into ``hist`` and ``sums``; the
    pieces' values are not summed per pixel, so the radial sums cost no second running sum.
    Block sums (per ``b`` x ``b`` block, sum and count of valid in-ring pixels, written into
    ``bsum`` and ``bn``) come from column sums over the block's rows, each in-ring valid pixel
    adding its value plus ``2**48`` (its count), summed ``b`` columns at a time.

    Returns ``(n_candidates, n_saturated, high)``; ``high``: the sum of the in-ring values not
    in ``counts`` (the frame's in-ring total is ``high`` + :func:`piece_totals`). ``hmax[r]``
    is raised to the highest bin of ``hist`` the pass fills in ring ``r`` (the bins from
    ``counts`` not included): the rings' histograms are mostly empty above the counts, and
    :func:`piece_totals` and :func:`clipped_stats` then read bins up to there only.
    """
    ny, nx = frame.shape
    nw = counts.shape[1]
    top = hist.shape[1] - 1
    isat, icand, ifast = _int_levels(top, sat, cand_level)
    if not hi >= -1:  # NaN or below -1: as -1 (no valid value; the cap below stays >= 0)
        hi = -1
    uhi = np.uint64(np.int64(min(hi, 2**32)))
    # values below this only increment (valid ones: not above hi)
    ufast = np.uint64(max(min(max(ifast, -1) + 1, nw, np.int64(uhi) + 1), 0))
    unp = np.uint64(piece_ring.shape[0])
    unr = np.uint64(n_ring)
    unw = np.uint64(nw)
    flat = counts.reshape(-1)
    nc = 0
    nsat = 0
    high = 0
    colsum = np.zeros(nx, np.uint64)
    low = _COUNT - np.uint64(1)
    zero = np.uint64(0)
    for i in range(ny):
        fi = frame[i]
        pi = pieces[i]
        for j in range(nx):
            v = np.int64(fi[j])
            up = np.uint64(pi[j])
            uv = np.uint64(v)
            # the common case, one test: a low value, counted in its piece's row (the
            # spare piece's for pixels in no piece)
            if uv < ufast:
                flat[up * unw + uv] += 1
                continue
            if up < unp and uv <= uhi:
                p = np.int64(up)
                if v < nw:
                    flat[up * unw + uv] += 1
                elif piece_bin[p] >= 0:
                    sums[piece_bin[p]] += v
                if up < unr:
                    r = piece_ring[p]
                    if v >= nw:
                        high += v
                        if v >= top:
                            hist[r, top] += 1
                            ovf[r, 0] += 1.0
                            ovf[r, 1] += v
                            ovf[r, 2] += float(v) * v
                            hmax[r] = top
                        else:
                            hist[r, v] += 1
                            hmax[r] = max(hmax[r], v)
                    if v >= isat:
                        nsat += 1
                    if v > icand:
                        if nc < cand.shape[0]:
                            cand[nc] = i * nx + j
                        nc += 1
            elif up < unp and piece_bin[np.int64(up)] >= 0:
                lost[piece_bin[np.int64(up)]] += weights[i, j]
        if b > 0:
            # block sums: column sums over the block's rows (a loop the compiler vectorises,
            # on the row just read, still in cache), then b columns at a time per block
            for j in range(nx):
                uv = np.uint64(np.int64(fi[j]))
                ok = (np.uint64(pi[j]) < unr) & (uv <= uhi)
                colsum[j] += (uv + _COUNT) if ok else zero
            if (i + 1) % b == 0 or i == ny - 1:
                # each block written once (not added): the caller need not zero bsum, bn;
                # sums below 2**48 convert exactly through int64 (one instruction, unlike
                # uint64)
                bs = bsum[i // b]
                bc = bn[i // b]
                start = 0
                if b == 3:  # the usual blocks: three columns, no inner loop
                    start = nx // 3
                    for bj in range(start):
                        d = colsum[3 * bj] + colsum[3 * bj + 1] + colsum[3 * bj + 2]
                        bs[bj] = np.float64(np.int64(d & low))
                        bc[bj] = np.int32(np.int64(d >> np.uint64(48)))
                for bj in range(start, bs.shape[0]):
                    d = zero
                    for j in range(bj * b, min(bj * b + b, nx)):
                        d += colsum[j]
                    bs[bj] = np.float64(np.int64(d & low))
                    bc[bj] = np.int32(np.int64(d >> np.uint64(48)))
                for j in range(nx):
                    colsum[j] = zero
    return nc, nsat, high


@numba.njit(**_JIT)
def piece_totals(counts, piece_ring, piece_bin, n_ring, hist, sums, hall, hmax):
    """After :func:`radial_ring_pass_int`: add each piece's value counts into its ring's
    histogram and its values into its radial bin's sum; ``hall``: the histogram of all rings
    (``hist.sum(axis=0)``), read up to ``hmax[r]`` (the pass's) or ``counts.shape[1] - 1``,
    whichever is higher. Returns the in-ring sum of the counted values. Integer sums, so the
    radial sums are exact (as the run sums are) in any order."""
    nw = counts.shape[1]
    total = 0
    for p in range(piece_ring.shape[0]):
        s = 0
        for k in range(1, nw):
            s += k * np.int64(counts[p, k])
        if p < n_ring:
            r = piece_ring[p]
            for k in range(nw):
                hist[r, k] += counts[p, k]
            total += s
        if piece_bin[p] >= 0:
            sums[piece_bin[p]] += s
    hall[:] = 0
    for r in range(hist.shape[0]):
        for k in range(min(max(hmax[r], nw - 1), hist.shape[1] - 1) + 1):
            hall[k] += hist[r, k]
    return total
