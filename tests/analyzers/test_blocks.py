"""Block kernels of the integrated spot finder against their numpy references, and what the
block background must get right: sharp ring flanks, module edges, shadow edges, polarisation."""

from __future__ import annotations

import numpy as np
import pytest

from xlive.analyzers._kernels.blocks import (
    BlockRingTable,
    block_background,
    block_background_ref,
    block_seeds,
    block_seeds_ref,
    block_shape,
    block_sums,
    block_sums_ref,
    box_scatter,
    box_scatter_ref,
    boxes_to_blocks,
    boxes_to_blocks_ref,
    detect_blocks,
    local_background,
    local_background_ref,
    radial_tolerance_sd,
    ring_table,
)
from xlive.analyzers.base import valid_range

SHAPE = (61, 70)  # 61 rows: a partial last row of blocks
INVALID = 2**32 - 1
CENTRE = (25.3, 31.7)


def _rings(mask=None, width=1.0, shape=SHAPE, centre=CENTRE):
    yy, xx = np.indices(shape)
    r = np.floor(np.hypot(yy - centre[0], xx - centre[1]) / width).astype(np.int32)
    if mask is not None:
        r[mask] = -1
    return r


def _frame(name):
    """Poisson background 0.5 with spots: isolated sharp and broad weak spots, a close pair,
    a zinger, gap markers and masked rows."""
    rng = np.random.default_rng(11)
    yy, xx = np.indices(SHAPE)
    lam = np.full(SHAPE, 0.5)
    mask = np.zeros(SHAPE, bool)

    def spot(x, y, n, s):
        lam[...] += n * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s**2)) / (2 * np.pi * s**2)

    if name in ("spots", "gaps", "holes"):
        spot(12.3, 14.6, 400, 0.8)
        spot(45.2, 20.7, 150, 2.8)
        spot(30.0, 45.0, 300, 1.2)
        spot(36.0, 45.5, 250, 1.2)
    frame = rng.poisson(lam).astype(np.uint32)
    if name == "zinger":
        frame[30, 20] = 300
    if name == "gaps":
        frame[:, 40:42] = INVALID
        mask[50:, :] = True
    if name == "holes":  # a masked pixel in every block: no block has all its pixels
        mask[::3, ::3] = True
        # and a first box with 17 blocks of 8 pixels: counted only with 8 as the fullest
        mask[6:24, 3:24] = True
        mask[9:24, 0:3] = True
    return frame, mask


def _run(frame, rings, mean, var, sb=8, gain=1.0, snr=4.0, b=3, tol=0.5, edge=0.25):
    """All block kernels on ``frame`` (numba), each checked against its reference."""
    lo, hi = valid_range(frame.dtype)
    nb = block_shape(frame.shape, b)
    bsum, bn = np.zeros(nb), np.zeros(nb, np.int32)
    block_sums(frame, rings, lo, hi, b, bsum, bn)
    rs, rn = block_sums_ref(frame, rings, lo, hi, b)
    np.testing.assert_allclose(bsum, rs)
    np.testing.assert_array_equal(bn, rn)
    t = BlockRingTable(rings, b)
    net0, nvar, nsd = np.empty(nb), np.empty(nb), np.empty(nb)
    nuse = np.empty(nb, np.int32)
    sdg = radial_tolerance_sd(mean, tol)
    args = (t.ptr, t.ring, t.count, t.n_static, bsum, bn, frame, rings, lo, hi, mean, var, sdg, b)
    block_background(*args, net0, nvar, nsd, nuse)
    rnet, rvar, rsd, ruse = block_background_ref(frame, rings, lo, hi, mean, var, sdg, b)
    np.testing.assert_allclose(net0, rnet, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(nvar, rvar, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(nsd, rsd, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(nuse, ruse)
    resid, scale = np.zeros((-(-nb[0] // sb), -(-nb[1] // sb))), np.zeros(1)
    scale = np.ones_like(resid)
    local_background(net0, nvar, nuse, sb, 2.5, resid, scale)
    rr, rsc = local_background_ref(net0, nvar, nuse, sb, 2.5)
    np.testing.assert_allclose(resid, rr, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(scale, rsc, rtol=1e-9)
    # as the finder: box values interpolated to every block
    rb, sc = np.empty(nb), np.empty(nb)
    boxes_to_blocks(resid, sb, rb)
    rsc = box_scatter_ref(net0, nvar, nuse, rb, sb, scale.shape)
    box_scatter(net0, nvar, nuse, rb, sb, scale)
    np.testing.assert_allclose(scale, rsc, rtol=1e-9)
    boxes_to_blocks(scale, sb, sc)
    np.testing.assert_allclose(rb, boxes_to_blocks_ref(resid, sb, nb), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sc, boxes_to_blocks_ref(scale, sb, nb), rtol=1e-12)
    seeds = np.zeros(nb, np.uint8)
    count = block_seeds(net0, nvar, nsd, nuse, rb, sc, 1, b, frame.shape, edge, gain, snr, seeds)
    ref = block_seeds_ref(net0, nvar, nsd, nuse, rb, sc, 1, b, frame.shape, edge, gain, snr)
    np.testing.assert_array_equal(seeds, ref)
    assert count == ref.sum()
    # boxes used as they are (sb > 1) in the seeds: same as the reference too
    s2 = np.zeros(nb, np.uint8)
    block_seeds(net0, nvar, nsd, nuse, resid, scale, sb, b, frame.shape, edge, gain, snr, s2)
    np.testing.assert_array_equal(
        s2,
        block_seeds_ref(net0, nvar, nsd, nuse, resid, scale, sb, b, frame.shape, edge, gain, snr),
    )
    # the fused stage gives the same as the kernels above, one after the other
    fused = _fused(t, bsum, bn, frame, rings, lo, hi, mean, var, sdg, b, sb, edge, gain, snr)
    np.testing.assert_array_equal(fused["seeds"], seeds)
    assert fused["count"] == count
    np.testing.assert_array_equal(fused["resid"], rb)
    np.testing.assert_array_equal(fused["rbox"], resid)
    np.testing.assert_array_equal(fused["sbox"], scale)
    for name, want in (("net0", net0), ("nvar", nvar), ("nsd", nsd), ("nuse", nuse)):
        np.testing.assert_array_equal(fused[name], want)
    return dict(net0=net0, nvar=nvar, nsd=nsd, nuse=nuse, resid=resid, scale=scale, seeds=seeds)


def _fused(t, bsum, bn, frame, rings, lo, hi, mean, var, sdg, b, sb, edge, gain, snr):
    """:func:`detect_blocks` on fresh buffers filled with garbage (it must overwrite them)."""
    nb = bsum.shape
    nbox = (-(-nb[0] // sb), -(-nb[1] // sb))
    rng = np.random.default_rng(0)
    out = dict(
        net0=rng.normal(size=nb),
        nvar=rng.normal(size=nb),
        nsd=rng.normal(size=nb),
        nuse=rng.integers(0, 9, nb).astype(np.int32),
        edge=rng.integers(0, 2, nb).astype(np.uint8),
        rbox=rng.normal(size=nbox),
        sbox=rng.normal(size=nbox),
        resid=rng.normal(size=nb),
        seeds=rng.integers(0, 2, nb).astype(np.uint8),
    )
    out["count"] = detect_blocks(
        t.r0, t.span_count, t.n_fixed, t.ptr, t.ring, t.count, t.n_static,
        ring_table(mean, var, sdg, t.span), bsum, bn, frame,
        rings, lo, hi, mean, var, sdg, b, sb, 2.5, edge, gain, snr, *out.values(),
    )  # fmt: skip
    return out


@pytest.mark.parametrize("case", ["spots", "zinger", "gaps", "gaps-edges-kept", "holes-edges-kept"])
def test_block_kernels_match_references(case):
    frame, mask = _frame(case.split("-")[0])
    rings = _rings(mask).astype(np.int16)
    n = int(_rings().max()) + 1
    mean, var = np.full(n, 0.5), np.full(n, 0.5)
    mean[-1] = np.nan  # a ring without statistics: its pixels are left out
    out = _run(frame, rings, mean, var, edge=-1.0 if case.endswith("kept") else 0.25)
    if case != "zinger":
        assert out["seeds"].sum() > 0  # not vacuous
    if case.startswith("gaps"):  # blocks with gap pixels were summed from their pixels
        assert (out["nuse"] < 9).sum() > 20
    if case.startswith("holes"):  # detect_blocks' boxes done again with the fullest block's 8
        assert out["nuse"].max() == 8


def test_block_ring_table_counts_each_blocks_pixels_per_ring():
    rings = _rings(np.indices(SHAPE)[0] > 55, width=0.7)
    t = BlockRingTable(rings)
    nby, nbx = block_shape(SHAPE)
    yy, xx = np.indices(SHAPE)
    blk = (yy // 3) * nbx + xx // 3
    ok = rings >= 0
    for k in (0, 5, 17 * nbx + 9, nby * nbx - 1):
        sel = ok & (blk == k)
        want = np.bincount(rings[sel], minlength=rings.max() + 1)
        got = np.zeros_like(want)
        got[t.ring[t.ptr[k] : t.ptr[k + 1]]] = t.count[t.ptr[k] : t.ptr[k + 1]]
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(t.n_static.ravel(), np.bincount(blk[ok], minlength=nby * nbx))
    assert np.diff(t.ptr).max() >= 4  # blocks do span several rings
    # the same counts with a fixed span of rings per block
    for k in range(nby * nbx):
        bi, bj = divmod(k, nbx)
        got = np.zeros(rings.max() + 1 + t.span, int)
        got[t.r0[bi, bj] : t.r0[bi, bj] + t.span] = t.span_count[bi, :, bj]
        want = np.zeros_like(got)
        want[t.ring[t.ptr[k] : t.ptr[k + 1]]] = t.count[t.ptr[k] : t.ptr[k + 1]]
        np.testing.assert_array_equal(got, want)


def test_blocks_straddling_two_modules_are_summed_from_the_sparse_table():
    """On a stacked-module detector (JUNGFRAU, AGIPD) a block straddling two modules has
    pixels on rings hundreds apart. Such wide blocks are summed from the sparse table, and
    the fixed span of rings stays that of the ordinary blocks (it was the widest block's:
    ~1000 rings on a JUNGFRAU 4M, half a GB of table and a second per frame); the fused
    stage still gives the kernels' and references' values, also for wide blocks with gap
    pixels or a ring without statistics."""
    frame, mask = _frame("gaps")
    near = _rings(mask)
    far = _rings(mask, centre=(CENTRE[0] + 300.0, CENTRE[1]))
    lower = np.arange(SHAPE[0])[:, None] >= 31  # a module boundary inside row 10 of blocks
    rings = np.where(lower, far, near).astype(np.int32)
    t = BlockRingTable(rings)
    wide = np.argwhere(t.n_fixed < 0)
    assert len(wide) >= 20 and np.all(wide[:, 0] == 10)
    assert t.span <= 5
    n = int(rings.max()) + 1
    rng = np.random.default_rng(2)
    mean, var = rng.uniform(0.4, 0.6, n), rng.uniform(0.4, 0.6, n)
    mean[rings[32, 4]] = np.nan  # a ring without statistics under a wide block
    out = _run(frame, rings, mean, var)
    assert out["seeds"].sum() > 0
    assert np.all(out["nuse"][10, :13] > 0)


def _powder(shape=(150, 162), centre=(70.2, 80.6), shift=0.0, seed=3):
    """Poisson counts of sharp powder rings (FWHM ~1.4 px) on a smooth background, optionally
    about a centre ``shift`` px away from the one the rings are binned about."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape)
    r = np.hypot(yy - centre[0], xx - centre[1] - shift)
    lam = 40.0 + 0.05 * r
    for r0, amp in ((21.0, 3000.0), (38.5, 1500.0), (52.2, 4000.0), (70.0, 800.0)):
        lam = lam + amp * np.exp(-((r - r0) ** 2) / (2 * 0.6**2))
    return rng.poisson(lam).astype(np.uint32), lam


def _ring_stats(frame, rings):
    """Per-ring mean and variance (the finder's clipped statistics are tested elsewhere;
    here the plain ones of a frame without spots)."""
    n = rings.max() + 1
    ok = rings >= 0
    cnt = np.bincount(rings[ok], minlength=n)
    s1 = np.bincount(rings[ok], frame[ok].astype(float), minlength=n)
    s2 = np.bincount(rings[ok], frame[ok].astype(float) ** 2, minlength=n)
    mean = s1 / np.maximum(cnt, 1)
    return mean, np.maximum(s2 / np.maximum(cnt, 1) - mean**2, 1e-3)


@pytest.mark.parametrize("shift", [0.0, 0.4])
def test_sharp_powder_ring_flanks_are_no_seeds(shift):
    """A block spans several one-pixel rings: on the flank of a sharp ring the mean of its
    centre's ring is far from its pixels' (the old rule seeded hundreds of blocks and dragged
    the local background down); summed per pixel, a noise-only powder pattern seeds nothing,
    also when the rings are 0.4 px off the binning centre."""
    frame, lam = _powder(shift=shift)
    rings = _rings(shape=frame.shape, centre=(70.2, 80.6))
    mean, var = _ring_stats(frame, rings)
    out = _run(frame, rings, mean, var, sb=16, snr=5.0)
    assert out["seeds"].sum() == 0
    assert np.all(np.abs(out["resid"]) < 2.0)  # ADU, on a background of ~45
    # the old rule, n * mean[ring of the block's centre pixel], seeds the flanks
    lo, hi = valid_range(frame.dtype)
    bsum, bn = block_sums_ref(frame, rings, lo, hi)
    centre = rings[1::3, 1::3]
    net_old, var_old = bsum - bn * mean[centre], bn * var[centre]
    one = np.ones((1, 1))
    old = block_seeds_ref(
        net_old, var_old, 0 * bn, bn, 0 * one, one, 10**6, 3, frame.shape, True, 1, 5
    )
    assert old.sum() > 20


def test_a_weak_broad_spot_beside_a_powder_ring_is_seeded():
    frame, lam = _powder(seed=4)
    yy, xx = np.indices(frame.shape)
    spot = (
        600.0 * np.exp(-((xx - 101.8) ** 2 + (yy - 49.0) ** 2) / (2 * 2.5**2)) / (2 * np.pi * 6.25)
    )
    frame = frame + np.random.default_rng(5).poisson(spot).astype(np.uint32)
    rings = _rings(shape=frame.shape, centre=(70.2, 80.6))
    mean, var = _ring_stats(frame, rings)
    out = _run(frame, rings, mean, var, sb=16, snr=5.0)
    seeded = np.argwhere(out["seeds"]) * 3 + 1
    assert len(seeded) and np.all(np.hypot(seeded[:, 0] - 49.0, seeded[:, 1] - 101.8) < 12)


def test_module_edges_and_shadow_edges_are_no_seeds():
    """A row brighter by 40 % beside a gap (PILATUS module edges) and the edge of a beam-stop
    shadow seed nothing; a weak broad spot 8 px from the gap is still found. With sound
    edges, a spot 2 px from the gap is found too (the edge blocks are only left out when the
    frame shows them brighter)."""
    rng = np.random.default_rng(7)
    shape = (120, 150)
    yy, xx = np.indices(shape)
    lam = np.full(shape, 50.0)
    lam[61, :] *= 1.4  # the row beside the gap
    lam[(xx > 90) & (yy > 75)] *= 0.4  # a shadow, unmasked
    spot = (
        700.0 * np.exp(-((xx - 30.5) ** 2 + (yy - 76.0) ** 2) / (2 * 2.2**2)) / (2 * np.pi * 4.84)
    )
    frame = rng.poisson(lam + spot).astype(np.uint32)
    frame[62:68, :] = INVALID  # the gap, marked in the data
    rings = _rings(shape=shape, centre=(-400.0, 75.0), width=1.0)  # far centre: flat rings
    mean, var = np.full(rings.max() + 1, 50.0), np.full(rings.max() + 1, 50.0)
    out = _run(frame, rings, mean, var, sb=16, snr=5.0)
    seeded = np.argwhere(out["seeds"]) * 3 + 1
    assert len(seeded) and np.all(np.hypot(seeded[:, 0] - 76.0, seeded[:, 1] - 30.5) < 12)
    assert out["scale"].max() > 2  # boxes cut by the shadow's edge scatter more than noise
    # the edge rule is what keeps the bright row quiet
    nb = block_shape(shape)
    s2 = np.zeros(nb, np.uint8)
    args = (out["net0"], out["nvar"], out["nsd"], out["nuse"], out["resid"], out["scale"], 16, 3)
    block_seeds(*args, shape, -1.0, 1.0, 5.0, s2)
    assert (np.argwhere(s2)[:, 0] * 3 + 1 < 67).any()  # seeds along the row above the gap


def test_polarisation_is_taken_off_per_box():
    """Intensity changing by +-20 % with azimuth (linear polarisation): the boxes' leftover
    background follows it, nothing else is seeded, and a weak broad spot in the dark sector
    is (1000 photons over sigma 2.5 px, integrated SNR ~6: the ring variance, which holds the azimuthal
    change, is what limits its significance)."""
    rng = np.random.default_rng(8)
    shape = (180, 180)
    yy, xx = np.indices(shape)
    phi = np.arctan2(yy - 90.3, xx - 90.1)
    lam = 60.0 * (1 + 0.2 * np.cos(2 * phi))
    spot = (
        1000.0 * np.exp(-((xx - 88.5) ** 2 + (yy - 20.0) ** 2) / (2 * 2.5**2)) / (2 * np.pi * 6.25)
    )
    frame = rng.poisson(lam + spot).astype(np.uint32)
    rings = _rings(shape=shape, centre=(90.3, 90.1))
    mean, var = _ring_stats(frame, rings)
    out = _run(frame, rings, mean, var, sb=12, snr=5.0)
    seeded = np.argwhere(out["seeds"]) * 3 + 1
    assert len(seeded) and np.all(np.hypot(seeded[:, 0] - 20.0, seeded[:, 1] - 88.5) < 12)
    resid = out["resid"]  # boxes of 36 px: 5 x 5
    assert resid[0, 2] < -6 and resid[4, 2] < -6  # above and below the centre: dark
    assert resid[2, 0] > 6 and resid[2, 4] > 6  # left and right: bright


def test_sound_module_edges_keep_their_spots():
    rng = np.random.default_rng(9)
    shape = (120, 150)
    yy, xx = np.indices(shape)
    spot = (
        700.0 * np.exp(-((xx - 60.5) ** 2 + (yy - 70.0) ** 2) / (2 * 1.5**2)) / (2 * np.pi * 2.25)
    )
    frame = rng.poisson(50.0 + spot).astype(np.uint32)
    frame[62:68, :] = INVALID  # the gap; the spot's centre 2 px below it
    rings = _rings(shape=shape, centre=(-400.0, 75.0), width=1.0)
    mean, var = np.full(rings.max() + 1, 50.0), np.full(rings.max() + 1, 50.0)
    auto = _run(frame, rings, mean, var, sb=16, snr=5.0)["seeds"]
    always = _run(frame, rings, mean, var, sb=16, snr=5.0, edge=0.0)["seeds"]
    assert auto[22:26, 18:23].any() and not always[22:26, 18:23].any()


def test_narrow_rings_leave_ordinary_blocks_in_the_fixed_span():
    """Rings 0.3 px wide: every 3 x 3 block spans ~10-15 rings, none of them wide (the
    sparse path is for blocks straddling two modules, not for ordinary blocks)."""
    yy, xx = np.indices((90, 120))
    rings = (np.hypot(yy - 40.3, xx - 61.7) / 0.3).astype(np.int32)
    rings[:, 50:53] = -1  # a module gap
    t = BlockRingTable(rings)
    assert t.span > 2 * t.b  # more rings than WIDE_SPAN alone allows
    assert (t.n_fixed >= 0).all()
    # a block straddling two modules stays wide
    rings[46:][rings[46:] >= 0] += 2000  # block row 15 (pixel rows 45-47) on both
    assert (BlockRingTable(rings).n_fixed < 0).sum() == rings.shape[1] // 3
