"""Per-bin sums of integer frames over precomputed runs of pixels (numba).

Along a detector row, neighbouring pixels mostly share a q bin: an EIGER 4M row with 500 bins
splits into runs of about five pixels. :func:`pixel_runs` finds these runs once per geometry;
per frame :func:`run_sums` then takes one running sum along each row and adds, per run,
``prefix[end] - prefix[start]`` into the run's bin. The loop over pixels has no data-dependent
branch (a per-pixel "bin changed?" test mispredicts about once a run and costs more than the
additions), and two rows are summed side by side so the two running sums overlap.

Invalid values (gap markers above ``hi``, negatives) add ``BAD = 2**48`` instead of their
value, so a run's difference carries its count of invalid pixels in the high bits; the rare run
with a nonzero count is walked pixel by pixel to add those pixels' weights to ``lost``. Exact
for frames of 32 bits or fewer and runs shorter than 2**16 pixels (the builder splits longer
ones). Reference: :func:`~.binning.bin_sums_ref`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

_JIT = dict(cache=True, nogil=True)
BAD = np.uint64(1) << np.uint64(48)
_MAX_RUN = 2**16 - 1


@dataclass(frozen=True)
class PixelRuns:
    """Runs of consecutive pixels of one row that share a bin; ``row_ptr[i]:row_ptr[i+1]``
    are row ``i``'s runs. Ignored pixels (bin -1) belong to no run."""

    start: np.ndarray  # first column
    end: np.ndarray  # one past the last column
    bin: np.ndarray
    row_ptr: np.ndarray

    @classmethod
    def from_bins(cls, bins: np.ndarray) -> PixelRuns:
        start, end, b, ptr = pixel_runs(np.ascontiguousarray(bins))
        col = np.uint16 if bins.shape[1] < 2**16 else np.int32
        return cls(start.astype(col), end.astype(col), b.astype(bins.dtype), ptr)


def runs_apply(dtype: np.dtype, lo: float = 0.0) -> bool:
    """Whether the run kernels are exact for frames of ``dtype`` (integers of 32 bits or fewer
    whose valid values start at ``lo >= 0``: the kernels treat negative values as invalid)."""
    dt = np.dtype(dtype)
    return dt.kind in "iu" and dt.itemsize <= 4 and lo >= 0


@numba.njit(**_JIT)
def pixel_runs(bins):
    """``(start, end, bin, row_ptr)`` of the runs of equal, non-negative ``bins`` per row."""
    ny, nx = bins.shape
    n_max = ny * nx
    start = np.empty(n_max, np.int32)
    end = np.empty(n_max, np.int32)
    rbin = np.empty(n_max, np.int32)
    row_ptr = np.zeros(ny + 1, np.int64)
    n = 0
    for i in range(ny):
        cur = -1
        for j in range(nx):
            b = bins[i, j]
            if b != cur or (b >= 0 and j - start[n - 1] >= _MAX_RUN):
                if cur >= 0:
                    end[n - 1] = j
                if b >= 0:
                    start[n] = j
                    rbin[n] = b
                    n += 1
                cur = b
        if cur >= 0:
            end[n - 1] = nx
        row_ptr[i + 1] = n
    return start[:n].copy(), end[:n].copy(), rbin[:n].copy(), row_ptr


@numba.njit(inline="always", **_JIT)
def _add_runs(frame, row, prefix, weights, hi, start, end, rbin, r0, r1, sums, lost):
    """Add row ``row``'s runs ``r0:r1`` into ``sums``, given its ``prefix`` sums."""
    for r in range(r0, r1):
        s = start[r]
        e = end[r]
        b = rbin[r]
        d = prefix[e] - prefix[s]
        if d >= BAD:  # rare: invalid pixels inside the run
            d &= BAD - np.uint64(1)
            for j in range(s, e):
                v = np.int64(frame[row, j])
                if v < 0 or v > hi:
                    lost[b] += weights[row, j]
        sums[b] += np.int64(d)


@numba.njit(inline="always", **_JIT)
def _packed(v, hi):
    """A pixel's contribution to the running sum: its value, or ``BAD`` if invalid."""
    return np.uint64(v) if v >= 0 and v <= hi else BAD


@numba.njit(**_JIT)
def run_sums(frame, weights, hi, start, end, rbin, row_ptr, sums, lost):
    """Add valid values of an integer ``frame`` (values in ``[0, hi]``) into ``sums`` per run
    bin; add ``weights`` of invalid pixels that lie in a run to ``lost``."""
    ny, nx = frame.shape
    ihi = np.int64(min(hi, 2**32))
    p0 = np.zeros(nx + 1, np.uint64)
    p1 = np.zeros(nx + 1, np.uint64)
    for i in range(0, ny - 1, 2):
        f0 = frame[i]
        f1 = frame[i + 1]
        a0 = np.uint64(0)
        a1 = np.uint64(0)
        for j in range(nx):
            a0 += _packed(np.int64(f0[j]), ihi)
            a1 += _packed(np.int64(f1[j]), ihi)
            p0[j + 1] = a0
            p1[j + 1] = a1
        _add_runs(
            frame, i, p0, weights, ihi, start, end, rbin, row_ptr[i], row_ptr[i + 1], sums, lost
        )
        _add_runs(
            frame,
            i + 1,
            p1,
            weights,
            ihi,
            start,
            end,
            rbin,
            row_ptr[i + 1],
            row_ptr[i + 2],
            sums,
            lost,
        )
    if ny % 2:
        i = ny - 1
        f0 = frame[i]
        a0 = np.uint64(0)
        for j in range(nx):
            a0 += _packed(np.int64(f0[j]), ihi)
            p0[j + 1] = a0
        _add_runs(
            frame, i, p0, weights, ihi, start, end, rbin, row_ptr[i], row_ptr[i + 1], sums, lost
        )
