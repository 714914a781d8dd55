"""Every numba kernel against its numpy reference, on random and edge inputs."""

from __future__ import annotations

import numpy as np
import pytest

from xlive.analyzers._kernels.binning import (
    PixelPieces,
    bin_sums,
    bin_sums_ref,
    clipped_stats,
    clipped_stats_ref,
    piece_totals,
    radial_ring_pass_int,
    ring_histograms,
    ring_histograms_int,
    ring_histograms_ref,
)
from xlive.analyzers._kernels.blocks import block_shape
from xlive.analyzers._kernels.neighbours import (
    nearest_distances,
    nearest_distances_ref,
    window_medians,
    window_medians_ref,
)
from xlive.analyzers._kernels.peaks import (
    find_peaks,
    find_peaks_ref,
    merge_close_peaks,
    merge_close_peaks_ref,
    pixels_above,
)
from xlive.analyzers._kernels.runs import PixelRuns, pixel_runs, run_sums, runs_apply
from xlive.analyzers._kernels.watershed import dilate_blocks, find_spots, find_spots_ref
from xlive.analyzers.base import valid_range
from xlive.geometry import Geometry

SHAPE = (60, 70)
INVALID = 2**32 - 1


_pilatus = Geometry.simple(
    shape=(2, 2),
    pixel_size=172e-6,
    distance=0.2,
    beam_center_x=1,
    beam_center_y=1,
    wavelength=1.0,
    sentinels=(-1, -2),
)


def test_runs_do_not_serve_signed_frames_with_real_negative_values():
    lo, _ = valid_range(np.int32)  # no declared markers: negative values are measurements
    assert lo == -np.inf and not runs_apply(np.int32, lo)
    assert _pilatus.valid_range(np.int32) == (0.0, np.inf)


def _rings(mask=None):
    yy, xx = np.indices(SHAPE)
    r = np.floor(np.hypot(yy - 25.3, xx - 31.7) / 3).astype(np.int32)
    if mask is not None:
        r[mask] = -1
    return r


def _frames():
    """Named edge cases: random counts, empty, saturated, all masked, invalid markers."""
    rng = np.random.default_rng(0)
    rand = rng.poisson(3.0, SHAPE).astype(np.uint32)
    rand[5, 5] = 400  # beyond the histogram: the overflow path
    gaps = rand.copy()
    gaps[:, 30:33] = INVALID
    sat = np.full(SHAPE, 65535, np.uint32)
    return {
        "random": (rand, None),
        "empty": (np.zeros(SHAPE, np.uint32), None),
        "saturated": (sat, None),
        "all_masked": (rand, np.ones(SHAPE, bool)),
        "gap_markers": (gaps, None),
        "float": (rng.normal(2.0, 1.0, SHAPE).astype(np.float32), None),
    }


@pytest.mark.parametrize("case", list(_frames()))
def test_bin_sums_matches_reference(case):
    frame, mask = _frames()[case]
    bins = _rings(mask)
    n = int(_rings().max()) + 1
    weights = np.random.default_rng(1).random(SHAPE).astype(np.float32)
    lo, hi = valid_range(frame.dtype)
    ref_sums, ref_lost = bin_sums_ref(frame, bins, weights, lo, hi, n)
    sums, lost = np.zeros(n), np.zeros(n)
    bin_sums(frame, bins.astype(np.int16), weights, lo, hi, sums, lost)
    np.testing.assert_allclose(sums, ref_sums, rtol=1e-12)
    np.testing.assert_allclose(lost, ref_lost, rtol=1e-6)
    if frame.dtype.kind in "iu":
        runs = PixelRuns.from_bins(bins.astype(np.int16))
        sums, lost = np.zeros(n), np.zeros(n)
        run_sums(frame, weights, hi, runs.start, runs.end, runs.bin, runs.row_ptr, sums, lost)
        np.testing.assert_allclose(sums, ref_sums, rtol=1e-12)
        np.testing.assert_allclose(lost, ref_lost, rtol=1e-6)
    if case == "all_masked":
        assert not sums.any()
    if case == "gap_markers":
        assert lost.sum() > 0


def _runs_ref(bins):
    """Runs of equal non-negative bins per row, by numpy: (start, end, bin) per row."""
    out = []
    for row in bins:
        edges = np.flatnonzero(np.diff(row)) + 1
        starts = np.r_[0, edges]
        ends = np.r_[edges, row.size]
        keep = row[starts] >= 0
        out.append(list(zip(starts[keep], ends[keep], row[starts][keep], strict=True)))
    return out


def test_pixel_runs_cover_each_unmasked_pixel_once():
    bins = _rings(_rings() % 5 == 0)
    start, end, rbin, ptr = pixel_runs(bins)
    s = [slice(ptr[i], ptr[i + 1]) for i in range(bins.shape[0])]
    got = [list(zip(start[k], end[k], rbin[k], strict=True)) for k in s]
    assert got == _runs_ref(bins)
    assert (end - start).sum() == (bins >= 0).sum()


def test_pixel_runs_split_runs_of_2_16_pixels():
    bins = np.zeros((1, 70_000), np.int32)
    start, end, _, _ = pixel_runs(bins)
    assert list(zip(start, end, strict=True)) == [(0, 65535), (65535, 70_000)]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.uint32])
@pytest.mark.parametrize("ny", [1, 6, 7])  # rows are summed in pairs: odd counts too
def test_run_sums_match_reference_per_dtype(dtype, ny):
    rng = np.random.default_rng(3)
    info = np.iinfo(dtype)
    frame = rng.integers(0, info.max, (ny, 70), endpoint=True).astype(dtype)
    if info.min < 0:
        frame[0, :5] = [-1, -2, info.min, 0, -7]  # PILATUS markers and other negatives
    else:
        frame[0, 3] = info.max  # the gap marker of unsigned detectors
    bins = _rings()[:ny]
    bins[:, 40:43] = -1
    n = int(bins.max()) + 1
    weights = rng.random(bins.shape).astype(np.float32)
    # the run kernels serve frames whose valid values start at 0: signed ones with PILATUS's
    # declared markers (-1, -2: nothing below 0 is a count)
    lo, hi = _pilatus.valid_range(dtype) if info.min < 0 else valid_range(dtype)
    assert runs_apply(dtype, lo)
    ref_sums, ref_lost = bin_sums_ref(frame, bins, weights, lo, hi, n)
    runs = PixelRuns.from_bins(bins.astype(np.int16))
    sums, lost = np.zeros(n), np.zeros(n)
    run_sums(frame, weights, hi, runs.start, runs.end, runs.bin, runs.row_ptr, sums, lost)
    np.testing.assert_allclose(sums, ref_sums, rtol=1e-12)
    np.testing.assert_allclose(lost, ref_lost, rtol=1e-6)
    assert lost.sum() > 0


@pytest.mark.parametrize("case", list(_frames()))
@pytest.mark.parametrize("step", [1, 2])
def test_ring_histograms_match_reference(case, step):
    frame, mask = _frames()[case]
    rings = _rings(mask)
    n = int(_rings().max()) + 1
    lo, hi = valid_range(frame.dtype)
    integer = frame.dtype.kind in "iu"
    vmin, scale = (0.0, 1.0) if integer else (-2.0, 4.0)
    kernel = ring_histograms_int if integer else ring_histograms
    hist = np.zeros((n, 256), np.int32)
    ovf = np.zeros((n, 3))
    cand = np.empty(SHAPE[0] * SHAPE[1], np.int64)
    nc, nsat, total = kernel(frame, rings, lo, hi, vmin, scale, 65535.0, 5.0, step, hist, ovf, cand)
    rh, rovf, rcand, rsat, rtotal = ring_histograms_ref(
        frame, rings, lo, hi, vmin, scale, 65535.0, 5.0, step, n, 256
    )
    np.testing.assert_array_equal(hist, rh)
    np.testing.assert_allclose(ovf, rovf, rtol=1e-12)
    np.testing.assert_array_equal(cand[:nc], rcand)
    assert nsat == rsat
    assert total == pytest.approx(rtotal, rel=1e-9)


def test_candidate_buffer_overflow_is_reported():
    frame = np.full(SHAPE, 10, np.uint32)
    cand = np.empty(5, np.int64)
    hist = np.zeros((50, 256), np.int32)
    nc, _, _ = ring_histograms_int(
        frame, _rings(), 0.0, 1e9, 0.0, 1.0, 1e9, 5.0, 1, hist, np.zeros((50, 3)), cand
    )
    assert nc == frame.size  # counted beyond the buffer, so callers know to rescan


@pytest.mark.parametrize("mean", [0.05, 1.0, 3.0, 40.0])
@pytest.mark.parametrize("min_excess", [0.0, 1.0])
def test_clipped_stats_match_reference(mean, min_excess):
    rng = np.random.default_rng(int(mean * 10))
    values = [rng.poisson(mean, n).astype(float) for n in (0, 1, 7, 300, 5000)]
    values[3][:3] = 200  # outliers to clip
    hist = np.zeros((len(values), 256), np.int32)
    ovf = np.zeros((len(values), 3))
    for r, v in enumerate(values):
        hist[r] = np.bincount(v.astype(int), minlength=256)
    m, s, c = np.empty(5), np.empty(5), np.empty(5)
    clipped_stats(hist, ovf, 0.0, 1.0, 0.0, 3.0, min_excess, 50, m, s, c, np.full(5, 255))
    rm, rs, rc = clipped_stats_ref(values, 3.0, min_excess, 50)
    np.testing.assert_allclose(m, rm, rtol=1e-9)
    np.testing.assert_allclose(s, rs, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(c, rc)
    assert np.isnan(m[0])
    assert m[3] < 3 * mean + 2  # the outliers were clipped
    # a bound at or above each ring's last filled bin changes nothing
    last = np.array([np.flatnonzero(h).max(initial=-1) for h in hist])
    m2, s2, c2 = np.empty(5), np.empty(5), np.empty(5)
    clipped_stats(hist, ovf, 0.0, 1.0, 0.0, 3.0, min_excess, 50, m2, s2, c2, last)
    np.testing.assert_array_equal(np.c_[m2, s2, c2], np.c_[m, s, c])


def test_clipping_drops_a_hot_pixel_in_the_overflow_bin():
    hist = np.zeros((1, 256), np.int32)
    hist[0, :4] = (400, 300, 200, 99)
    hist[0, 255] = 1
    ovf = np.array([[1.0, 19660.0, 19660.0**2]])
    m, s, c = np.empty(1), np.empty(1), np.empty(1)
    clipped_stats(hist, ovf, 0.0, 1.0, 0.0, 3.0, 1.0, 50, m, s, c, np.array([255]))
    assert m[0] < 2 and c[0] < 1000


def _peak_case(name):
    """Frames with spots: random, single-pixel spot, spot on a gap edge, empty, saturated."""
    rng = np.random.default_rng(7)
    frame = rng.poisson(1.0, SHAPE).astype(np.int32)
    mask = np.zeros(SHAPE, bool)
    yy, xx = np.indices(SHAPE)

    def spot(x, y, n):
        frame[...] += rng.poisson(
            n * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 0.7**2)) / (2 * np.pi * 0.7**2)
        ).astype(np.int32)

    if name == "random":
        for x, y, n in ((10.2, 12.7, 200), (40.6, 30.1, 80), (55.0, 50.4, 500), (20, 45, 30)):
            spot(x, y, n)
    elif name == "single_pixel":
        frame[30, 20] = 300
    elif name == "gap_edge":
        mask[:, 33:36] = True
        spot(32.2, 20.0, 300)
    elif name == "empty":
        frame[:] = 0
    elif name == "saturated":
        frame[:] = 1048500
    elif name == "all_masked":
        mask[:] = True
        spot(20, 20, 300)
    elif name == "row_edges":  # flat neighbours across a row end are no pixel neighbours
        frame[:] = 0
        frame[20, -2:] = 200  # row 20's last pixels, row 21's first ...
        frame[21, :2] = 200
        frame[40, :2] = 200  # ... and row 40's first, row 39's last
        frame[39, -2:] = 200
    elif name == "speckle":  # many touching pixels above threshold: components of any shape
        frame[...] = rng.poisson(4.0, SHAPE).astype(np.int32)
    return frame, mask


@pytest.mark.parametrize(
    "case",
    [
        "random",
        "single_pixel",
        "gap_edge",
        "empty",
        "saturated",
        "all_masked",
        "row_edges",
        "speckle",
    ],
)
@pytest.mark.parametrize("single_frac", [0.9, 1.01])
@pytest.mark.parametrize("gain, read_var", [(1.0, 0.0), (2.5, 4.0)])
def test_find_peaks_matches_reference(case, single_frac, gain, read_var):
    frame, mask = _peak_case(case)
    rings = _rings(mask)
    n = int(_rings().max()) + 1
    rmean = np.full(n, 1.0)
    rsigma = np.full(n, 1.0)
    thr = np.maximum(5.0, rmean + 5 * rsigma)
    lo, hi = valid_range(frame.dtype)
    cand = pixels_above(frame, rings, thr, lo, hi)
    out = np.empty((100, 7))
    found = find_peaks(
        frame,
        rings,
        thr,
        rmean,
        rsigma,
        lo,
        hi,
        cand,
        1,
        1000,
        5,
        3.0,
        single_frac,
        gain,
        read_var,
        out,
    )
    ref = find_peaks_ref(
        frame, rings, thr, rmean, rsigma, lo, hi, 1, 1000, 5, 3.0, single_frac, gain, read_var
    )
    assert found == len(ref)
    np.testing.assert_allclose(out[:found], ref, rtol=1e-9, atol=1e-9)
    if case == "random" and gain == 1.0:
        assert found == 4
    if case == "single_pixel":  # a lone bright pixel is a hot pixel unless allowed
        assert found == (0 if single_frac < 1 else 1)
    if case in ("empty", "all_masked", "saturated"):
        assert found == 0
    if case == "row_edges":
        assert found == 4
    if case == "speckle" and gain == 1.0:  # not vacuous: multi-pixel components
        assert found >= 5 and (out[:found, 3] > 2).any()
    if case == "gap_edge":
        assert found == 1 and out[0, 0] < 33


@pytest.mark.parametrize("n", [0, 1, 2, 30, 500])
@pytest.mark.parametrize("radius", [0.0, 2.0, 5.0])
def test_merge_close_peaks_matches_reference(n, radius):
    """Groups of split peaks (pairs, chains, a lump of 20 members) merge exactly as the
    numpy/scipy reference merges them, rows in the same order."""
    rng = np.random.default_rng(n)
    rows = rng.random((n, 7)) * [1000, 1000, 500, 9, 40, 2, 300]
    rows[:, 3] = np.ceil(rows[:, 3])
    if n >= 30:
        rows[5, :2] = rows[4, :2] + [1.1, -0.9]  # a pair
        rows[7, :2] = rows[6, :2] + [1.9, 0.0]  # a chain: 6-7-8 (6 and 8 too far apart)
        rows[8, :2] = rows[7, :2] + [1.8, 0.3]
        rows[9, :2] = rows[4, :2] + [0.0, 2.0]  # exactly at the radius 2
        rows[10, 2] = -5.0  # negative intensity in a group
        rows[10, :2] = rows[11, :2] + [0.5, 0.5]
    if n >= 500:  # a lump: numpy's pairwise sums over 8 and more members
        rows[100:120, :2] = rows[99, :2] + rng.normal(0, 0.4, (20, 2))
    out = merge_close_peaks(rows, radius)
    ref = merge_close_peaks_ref(rows, radius)
    np.testing.assert_array_equal(out, ref)
    if n >= 30 and radius == 2.0:
        assert len(out) <= n - 5  # not vacuous: groups were merged


@pytest.mark.parametrize("n", [0, 1, 2, 3, 40, 400])
def test_nearest_distances_match_reference(n):
    rng = np.random.default_rng(n)
    x, y = rng.random(n) * 1000, rng.random(n) * 1000
    if n > 3:
        x[1], y[1] = x[0], y[0]  # a duplicate point: distance 0
    np.testing.assert_allclose(nearest_distances(x, y), nearest_distances_ref(x, y))


@pytest.mark.parametrize("half", [1, 2, 6])
@pytest.mark.parametrize("n", [1, 5, 60])
def test_window_medians_match_reference(n, half):
    rng = np.random.default_rng(n + half)
    m = rng.normal(size=n).round(1)  # ties
    m[rng.random(n) < 0.3] = np.nan
    if n >= 60:
        m[20:40] = np.nan  # windows with nothing finite, and with even counts
    out = window_medians(m, half)
    np.testing.assert_array_equal(out, window_medians_ref(m, half))
    if n >= 60:
        assert np.isnan(out[30]) and np.isfinite(out).sum() > 20
    m[rng.random(n) < 0.1] = np.inf  # infinities count, as in np.nanmedian
    m[rng.random(n) < 0.1] = -np.inf
    np.testing.assert_array_equal(window_medians(m, half), window_medians_ref(m, half))


def _fused_bins():
    """Radial bins for the fused-pass tests: another binning than the rings, with pixels in a
    ring but in no bin (a q range) and in a bin but in no ring (masked for the rings only)."""
    bins = _rings()[::-1, ::-1].copy()
    bins[:, :4] = -1
    return bins


def test_pixel_pieces_split_pixels_by_ring_and_bin():
    rings = _rings(_rings() % 4 == 1)
    bins = _fused_bins()
    pc = PixelPieces.build(rings, bins)
    use = (rings >= 0) | (bins >= 0)
    assert np.array_equal(pc.map < pc.ring.size, use)  # the others: the spare piece
    assert (pc.map <= pc.ring.size).all() and pc.empty().shape[0] == pc.ring.size + 1
    # each pixel's piece has its ring and bin; one piece per (ring, bin) pair
    np.testing.assert_array_equal(pc.ring[pc.map[use]], rings[use])
    np.testing.assert_array_equal(pc.bin[pc.map[use]], bins[use])
    pairs = set(zip(rings[use].tolist(), bins[use].tolist(), strict=True))
    assert len(pairs) == pc.ring.size
    # pieces in a ring first
    assert (pc.ring[: pc.n_ring] >= 0).all() and (pc.ring[pc.n_ring :] < 0).all()
    assert pc.n_ring < pc.ring.size  # bins outside the rings exist in this case


def _fused(frame, rings, bins, weights, hi, b=0, n_low=8):
    """Run the fused pass (+ piece_totals) on fresh buffers; all its outputs."""
    n = int(_rings().max()) + 1
    pc = PixelPieces.build(rings, bins)
    sums, lost = np.zeros(n), np.zeros(n)
    hist, ovf = np.zeros((n, 256), np.int32), np.zeros((n, 3))
    hmax = np.full(n, -1, np.int64)
    cand = np.empty(frame.size, np.int64)
    bsum = np.full(block_shape(frame.shape, max(b, 1)), 7.0)  # written, not added to
    bn = np.full(bsum.shape, 3, np.int32)
    counts = pc.empty(n_low)
    nc, nsat, high = radial_ring_pass_int(
        frame,
        pc.map,
        pc.ring,
        pc.bin,
        pc.n_ring,
        weights,
        hi,
        65535.0,
        5.0,
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
    )
    hall = np.full(256, 7, np.int64)  # overwritten
    total = high + piece_totals(counts, pc.ring, pc.bin, pc.n_ring, hist, sums, hall, hmax)
    np.testing.assert_array_equal(hall, hist.sum(axis=0))
    # hmax bounds each ring's filled bins (beyond those the counts fill), tightly
    filled = np.array([np.flatnonzero(h).max(initial=-1) for h in hist])
    np.testing.assert_array_equal(np.maximum(hmax, n_low - 1), np.maximum(filled, n_low - 1))
    return dict(
        nc=nc,
        nsat=nsat,
        total=total,
        sums=sums,
        lost=lost,
        hist=hist,
        ovf=ovf,
        cand=cand[: min(nc, cand.size)],
        bsum=bsum,
        bn=bn,
    )


@pytest.mark.parametrize("n_low", [8, 3, 1])
@pytest.mark.parametrize(
    "case",
    [c for c, (f, _) in _frames().items() if f.dtype.kind == "u"] + ["random_uint16"],
)
def test_fused_pass_matches_both_references(case, n_low):
    if case == "random_uint16":  # the 16-bit frames the live replay sends
        frame, mask = _frames()["random"]
        frame = frame.astype(np.uint16)
        frame[7, 7] = 65535
    else:
        frame, mask = _frames()[case]
    rings = _rings(mask)
    bins = _fused_bins()
    n = int(_rings().max()) + 1
    weights = np.random.default_rng(2).random(SHAPE).astype(np.float32)
    lo, hi = valid_range(frame.dtype)
    out = _fused(frame, rings, bins, weights, hi, n_low=n_low)
    rs, rl = bin_sums_ref(frame, bins, weights, lo, hi, n)
    rh, rovf, rcand, rsat, rtotal = ring_histograms_ref(
        frame, rings, lo, hi, 0.0, 1.0, 65535.0, 5.0, 1, n, 256
    )
    np.testing.assert_array_equal(out["sums"], rs)  # integer sums: exact in any order
    np.testing.assert_allclose(out["lost"], rl, rtol=1e-6)
    np.testing.assert_array_equal(out["hist"], rh)
    np.testing.assert_allclose(out["ovf"], rovf, rtol=1e-12)
    np.testing.assert_array_equal(out["cand"], rcand)
    assert (out["nsat"], out["total"]) == (rsat, rtotal)
    if case == "random":  # not vacuous: low, high and overflow values, pixels in a bin only
        assert rh[:, 0].any() and rh[:, 9:255].any() and rh[:, 255].any()
    if case == "gap_markers":
        assert out["lost"].sum() > 0


# --------------------------------------------------------------------------- integrated spots
def _spot_frame(name):
    """Poisson background 0.5 with spots for the integrated finder: isolated sharp and broad
    weak spots, a close pair, a zinger, a masked stripe, gap markers."""
    rng = np.random.default_rng(11)
    yy, xx = np.indices(SHAPE)
    lam = np.full(SHAPE, 0.5)
    mask = np.zeros(SHAPE, bool)

    def spot(x, y, n, s):
        lam[...] += n * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s**2)) / (2 * np.pi * s**2)

    if name in ("spots", "gaps"):
        spot(12.3, 14.6, 400, 0.8)  # sharp
        spot(45.2, 20.7, 150, 2.8)  # broad and weak: peak ~3 counts
        spot(30.0, 45.0, 300, 1.2)  # a close pair, 6 px apart
        spot(36.0, 45.5, 250, 1.2)
    frame = rng.poisson(lam).astype(np.uint32)
    if name == "zinger":
        frame[30, 20] = 300
    if name == "gaps":
        frame[:, 40:42] = INVALID
        mask[50:, :] = True
    return frame, mask


@pytest.mark.parametrize("case", ["spots", "zinger", "gaps", "empty"])
@pytest.mark.parametrize("gain", [1.0, 2.0])
@pytest.mark.parametrize("single_frac", [0.9, 1.01])
@pytest.mark.parametrize("h, split", [(1, (0.0, 0.03)), (2, (0.0, 0.03)), (2, (2.0, 0.1))])
def test_find_spots_matches_reference(case, gain, single_frac, h, split):
    frame, mask = _spot_frame("spots" if case == "empty" else case)
    if case == "empty":
        frame[:] = 0
    frame = frame * np.uint32(gain) if gain != 1.0 else frame
    rings = _rings(mask).astype(np.int16)
    n = int(_rings().max()) + 1
    mean, var = np.full(n, 0.5 * gain), np.full(n, 0.5 * gain**2)
    lo, hi = valid_range(frame.dtype)
    nb = block_shape(SHAPE)
    blocks = np.zeros(nb, np.uint8)
    blocks[1:-2, 2:] = 1  # most of the frame, not all
    blocks = dilate_blocks(blocks)
    yy, xx = np.indices((4, 4))
    resid = 0.1 * gain * (yy - xx)  # a tilted leftover background in boxes of 18 px
    args = (frame, rings, mean, resid, 18, var, lo, hi, blocks, 3, h, gain, 2.0, *split, 3.0, 5.0)
    args = (*args, single_frac)
    out = np.empty((50, 7))
    found = find_spots(*args, 1, 1000, out)
    ref = find_spots_ref(*args, 1, 1000)
    assert found == len(ref)
    np.testing.assert_allclose(out[:found], ref, rtol=1e-9, atol=1e-9)
    if case == "spots" and split[0] == 0:
        assert found == 4  # sharp, broad, and both of the close pair: each once
    if case == "zinger":  # the lone bright pixel is no spot unless allowed
        assert found == (0 if single_frac < 1 else 1)
    if case == "empty":
        assert found == 0


@pytest.mark.parametrize("b", [3, 4])
@pytest.mark.parametrize("case", [c for c, (f, _) in _frames().items() if f.dtype.kind == "u"])
def test_fused_block_pass_matches_references(case, b):
    """With block sums on, the fused pass also equals the spot finder's block_sums (numpy
    reference), and its other outputs stay those of the pass without blocks."""
    from xlive.analyzers._kernels.blocks import block_sums_ref

    frame, mask = _frames()[case]
    rings = _rings(mask)
    weights = np.random.default_rng(2).random(SHAPE).astype(np.float32)
    lo, hi = valid_range(frame.dtype)
    plain = _fused(frame, rings, _fused_bins(), weights, hi)
    out = _fused(frame, rings, _fused_bins(), weights, hi, b=b)
    for k, v in plain.items():
        if k not in ("bsum", "bn"):
            np.testing.assert_array_equal(np.asarray(out[k]), np.asarray(v))
    rsum, rn = block_sums_ref(frame, rings, lo, hi, b)
    np.testing.assert_array_equal(out["bsum"], rsum)
    np.testing.assert_array_equal(out["bn"], rn)
    assert case == "all_masked" or rn.sum() > 0  # not vacuous


@pytest.mark.parametrize("hi", [-3.0, np.nan])
def test_ring_pass_stays_in_its_counts_for_any_upper_limit(hi):
    """An upper limit below -1 or NaN (nothing valid) never sends a pixel to the fast path's
    unchecked counts (a guard region after them stays zero)."""
    from xlive.analyzers._kernels.binning import PixelPieces, radial_ring_pass_int

    rings = np.zeros((4, 4), np.int64)
    pc = PixelPieces.build(rings, np.zeros((4, 4), np.int64))
    rows = pc.empty(8).shape[0]
    big = np.zeros((rows + 20, 8), np.int32)
    hist = np.zeros((1, 64), np.int32)
    radial_ring_pass_int(
        np.full((4, 4), 100, np.int32), pc.map, pc.ring, pc.bin, pc.n_ring, np.ones((4, 4)),
        hi, 65535.0, 5.0, big[:rows], np.zeros(1), np.zeros(1), hist, np.zeros((1, 3)),
        np.full(1, -1, np.int64), np.empty(16, np.int64), 0, np.zeros((1, 1)),
        np.zeros((1, 1), np.int32),
    )  # fmt: skip
    assert big[rows:].sum() == 0
