"""The 'hard' simulator preset: footprint SNR against independent computations, spot widths and
bandwidth streaks measured from the images, crowding, zingers and hot pixels outside the mask."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial import cKDTree
from xlive_testing import run_xlive

from xlive.errors import ConfigError
from xlive.simulate import SimParams, Simulation, read_truth
from xlive.simulate.footprint import FOOTPRINT_RADIUS

DET = "eiger500k"


@pytest.fixture(scope="module")
def hard():
    # 8 noisy background realisations (not ~32): quicker, same truth
    sim = Simulation(SimParams.preset("hard", detector=DET, seed=1, n_backgrounds=8))
    frames = {n: sim.frame(n) for n in range(12)}
    return sim, frames


def hits(frames):
    return [(n, img, t) for n, (img, t) in frames.items() if t.hit]


def cov_of(sim, x, y, sigma_r, sigma_t):
    """Covariance (x-y order) with sigma_r along the line from the beam to the spot."""
    bx, by = (c - 0.5 for c in sim.geometry.beam_center)  # array-index coordinates
    u = np.array([x - bx, y - by]) / np.hypot(x - bx, y - by)
    v = np.array([-u[1], u[0]])
    return sigma_r**2 * np.outer(u, u) + sigma_t**2 * np.outer(v, v)


def footprint_of(sim, x, y, cov):
    """Footprint pixels by the documented definition: unmasked pixel centres within Mahalanobis
    radius 2 of the pixel-integrated profile (covariance + 1/12), plus the centre pixel."""
    ny, nx = sim.geometry.shape
    h = int(np.ceil(6 * np.sqrt(np.linalg.eigvalsh(cov).max()))) + 1
    cx, cy = int(np.rint(x)), int(np.rint(y))
    yy, xx = np.mgrid[cy - h : cy + h + 1, cx - h : cx + h + 1]
    d = np.stack([xx - x, yy - y], axis=-1)
    m2 = np.einsum("...i,ij,...j->...", d, np.linalg.inv(cov + np.eye(2) / 12), d)
    inside = (xx >= 0) & (xx < nx) & (yy >= 0) & (yy < ny)
    sel = ((m2 <= FOOTPRINT_RADIUS**2) | ((xx == cx) & (yy == cy))) & inside
    xx, yy = xx[sel], yy[sel]
    ok = ~sim.geometry.mask[yy, xx]
    return xx[ok], yy[ok]


def pixel_integral(x, y, cov, px, py, sub=8):
    """Fraction of a Gaussian's photons in pixels (px, py): sub x sub midpoint sampling of the
    exact 2-D Gaussian over each pixel's square (independent of the simulator's
    covariance-plus-1/12 shortcut)."""
    s = (np.arange(sub) + 0.5) / sub - 0.5
    oy, ox = (a.ravel() for a in np.meshgrid(s, s, indexing="ij"))
    dx = px[:, None] + ox[None, :] - x
    dy = py[:, None] + oy[None, :] - y
    inv = np.linalg.inv(cov)
    m2 = inv[0, 0] * dx * dx + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy
    pdf = np.exp(-0.5 * m2) / (2 * np.pi * np.sqrt(np.linalg.det(cov)))
    return pdf.mean(axis=1)


def test_truth_snr_is_the_footprint_sum_of_an_analytic_gaussian(hard):
    sim, frames = hard
    n, _, t = hits(frames)[0]
    _, k, _ = sim.event(n)
    s = t.spots
    bg = sim.expected_background(jet_on=t.jet_on, ice=t.ice, laser_on=t.laser_on)
    bg = bg * sim.pulse_scale(k)
    rng = np.random.default_rng(0)
    pick = rng.choice(np.flatnonzero(~s["masked"] & (s["snr"] > 3)), 60, replace=False)
    fractions = []
    for i in pick:
        x, y = s["x"][i], s["y"][i]
        cov = cov_of(sim, x, y, s["sigma_r"][i], s["sigma_t"][i])
        px, py = footprint_of(sim, x, y, cov)
        assert len(px) == s["npix"][i]
        signal = s["photons"][i] * pixel_integral(x, y, cov, px, py).sum()
        b = bg[py, px].sum()
        assert s["signal"][i] == pytest.approx(signal, rel=0.01)
        assert s["snr"][i] == pytest.approx(signal / np.sqrt(signal + b), rel=0.01)
        fractions.append(s["signal"][i] / s["photons"][i])
    # the footprint holds most of the photons (~86 % on a continuous ellipse; pixelised, and
    # less where the mask or the edge cuts it)
    assert np.all(np.array(fractions) < 0.95) and 0.8 < np.median(fractions) < 0.92


def test_footprint_sums_in_the_images_scatter_as_the_truth_snr_says(hard):
    """Monte-Carlo check over isolated spots: (footprint sum - background - S) / sqrt(S + B)
    has mean 0 and standard deviation 1, so S / sqrt(S + B) is the measured significance."""
    sim, frames = hard
    z, snr = [], []
    for n, img, t in hits(frames):
        _, k, _ = sim.event(n)
        s = t.spots
        bg = sim.expected_background(jet_on=t.jet_on, ice=t.ice, laser_on=t.laser_on)
        bg = bg * sim.pulse_scale(k)
        xy = np.stack([s["x"], s["y"]], axis=1)
        tree = cKDTree(xy)
        artefacts = np.stack([t.artefacts["x"], t.artefacts["y"]], axis=1)
        covs = [cov_of(sim, *xy[j], s["sigma_r"][j], s["sigma_t"][j]) for j in range(len(xy))]
        for i in np.flatnonzero(~s["masked"] & (s["snr"] >= 5))[:200]:
            if len(artefacts) and np.min(np.hypot(*(artefacts - xy[i]).T)) < 20:
                continue
            px, py = footprint_of(sim, *xy[i], covs[i])
            # photons the neighbours put into this footprint (analytic, from their truth)
            leak = sum(
                s["photons"][j] * pixel_integral(*xy[j], covs[j], px, py, sub=2).sum()
                for j in tree.query_ball_point(xy[i], 30)
                if j != i
            )
            if leak > 1.0:
                continue
            total = img[py, px].astype(np.float64).sum()
            sig, b = s["signal"][i], bg[py, px].sum()
            z.append((total - b - sig - leak) / np.sqrt(sig + b + leak))
            snr.append(s["snr"][i])
    z = np.array(z)
    assert len(z) >= 200, len(z)
    assert abs(z.mean()) < 4 / np.sqrt(len(z))
    assert z.std() == pytest.approx(1.0, abs=0.12)
    assert np.count_nonzero(np.array(snr) < 20) > 30  # weak spots are among them


def radial_tangential_widths(sim, img, bg, x, y, reach_r, reach_t):
    """Background-subtracted second moments along the radius and across it, over the pixels
    of a box of half-sizes ``reach_r`` x ``reach_t`` aligned with the radius; the pixel's own
    box variance 1/12 taken out (None when the box touches a masked pixel)."""
    bx, by = (c - 0.5 for c in sim.geometry.beam_center)
    u = np.array([x - bx, y - by]) / np.hypot(x - bx, y - by)
    h = int(np.ceil(max(reach_r, reach_t))) + 1
    cx, cy = int(np.rint(x)), int(np.rint(y))
    yy, xx = np.mgrid[cy - h : cy + h + 1, cx - h : cx + h + 1]
    dr = (xx - x) * u[0] + (yy - y) * u[1]
    dt = -(xx - x) * u[1] + (yy - y) * u[0]
    box = (np.abs(dr) <= reach_r) & (np.abs(dt) <= reach_t)
    if sim.geometry.mask[yy[box], xx[box]].any():
        return None
    w = img[yy[box], xx[box]].astype(np.float64) - bg[yy[box], xx[box]]
    return (
        np.sqrt((w * dr[box] ** 2).sum() / w.sum() - 1 / 12),
        np.sqrt((w * dt[box] ** 2).sum() / w.sum() - 1 / 12),
    )


def isolated_bright(sim, t, min_photons):
    """(spot index, window half-size) of bright spots with the window on unmasked pixels and
    no other spot within the window plus a neighbour's reach."""
    s = t.spots
    ny, nx = sim.geometry.shape
    xy = np.stack([s["x"], s["y"]], axis=1)
    d, _ = cKDTree(xy).query(xy, k=2)
    out = []
    for i in np.flatnonzero(s["photons"] >= min_photons):
        half = int(np.ceil(4.5 * np.sqrt(2) * s["sigma_r"][i]))
        cx, cy = int(np.rint(s["x"][i])), int(np.rint(s["y"][i]))
        if d[i, 1] <= half + 12 or not (half < cx < nx - half - 1 and half < cy < ny - half - 1):
            continue
        if not sim.geometry.mask[cy - half : cy + half + 1, cx - half : cx + half + 1].any():
            out.append((i, half))
    return out


def bright_sim(**kw):
    """The hard preset with bright spots of a smaller cell (sparse: isolated spots to measure)
    and no artefacts."""
    return Simulation(
        SimParams.preset(
            "hard",
            detector=DET,
            seed=5,
            hit_fraction=1.0,
            unit_cell=(40.0, 45.0, 50.0, 90.0, 90.0, 90.0),
            crystal_strength=20000.0,
            multi_lattice_fraction=0.0,
            zingers=0.0,
            hot_pixels=0,
            n_backgrounds=4,
            **kw,
        )
    )


def measured_widths(sim, frames=8):
    out = []
    for n in range(frames):
        img, t = sim.frame(n)
        _, k, _ = sim.event(n)
        bg = sim.expected_background(jet_on=t.jet_on, ice=t.ice, laser_on=t.laser_on)
        bg = bg * sim.pulse_scale(k)
        s = t.spots
        for i, _ in isolated_bright(sim, t, min_photons=2000):
            w = radial_tangential_widths(
                sim, img, bg, s["x"][i], s["y"][i], 4.5 * s["sigma_r"][i], 4.5 * s["sigma_t"][i]
            )
            if w is not None:
                out.append((*w, s["sigma_r"][i], s["sigma_t"][i]))
    return np.array(out)


def test_spot_widths_measured_from_the_images_span_the_range():
    w = measured_widths(bright_sim(streaks=False))
    assert len(w) >= 20, len(w)
    # no streaks: round spots; measured widths follow the truth's and span 1.5-3.5 px
    np.testing.assert_allclose(w[:, 0], w[:, 2], rtol=0.12)
    np.testing.assert_allclose(w[:, 1], w[:, 3], rtol=0.12)
    assert w[:, 1].min() < 1.9 and w[:, 1].max() > 3.0
    assert np.all((w[:, :2] > 1.3) & (w[:, :2] < 3.8))


def test_streaks_elongate_spots_radially_more_with_more_bandwidth():
    ratios = {}
    for bw in (0.002, 0.01):
        w = measured_widths(bright_sim(bandwidth=bw, spot_sigma_range=(1.5, 1.5)))
        assert len(w) >= 15, (bw, len(w))
        # tangential width stays the spot's, radial grows as the truth's streak says
        np.testing.assert_allclose(w[:, 1], 1.5, rtol=0.12)
        np.testing.assert_allclose(w[:, 0], w[:, 2], rtol=0.12)
        ratios[bw] = np.median(w[:, 0] / w[:, 1])
    assert ratios[0.01] > 1.5 * ratios[0.002] and ratios[0.002] > 1.02, ratios


def test_streak_length_follows_the_bragg_angle_spread():
    """sigma_r = hypot(sigma_t, D sec^2(2θ) 2 tan θ b / pixel), from the geometry's own 2θ."""
    sim = bright_sim(bandwidth=0.01)
    _, t = sim.frame(0)
    s = t.spots
    g = sim.geometry
    iy, ix = np.rint(s["y"]).astype(int), np.rint(s["x"]).astype(int)
    tth = g.maps.two_theta[iy, ix]
    streak = g.distance / np.cos(tth) ** 2 * 2 * np.tan(tth / 2) * 0.01 / g.pixel_size
    np.testing.assert_allclose(s["sigma_r"], np.hypot(s["sigma_t"], streak), rtol=0.02, atol=0.05)


def test_large_cell_crowds_spots_closer_than_8_pixels(hard):
    sim, frames = hard
    assert min(sim.params.unit_cell[:3]) >= 250
    nn, n_strong = [], 0
    for _, _, t in hits(frames):
        s = t.spots
        strong = (s["snr"] >= 10) & ~s["masked"]
        xy = np.stack([s["x"][strong], s["y"][strong]], axis=1)
        d, _ = cKDTree(xy).query(xy, k=2)
        nn.extend(d[:, 1])
        n_strong += strong.sum()
    nn = np.array(nn)
    assert n_strong > 1000
    assert 0.03 < np.mean(nn < 8) < 0.3  # crowded, though most spots stay apart
    # broad weak spots: integrated SNR 10-20 with a peak of only a few counts per pixel
    peak = []
    for _, _, t in hits(frames):
        s = t.spots
        sel = (s["snr"] >= 10) & (s["snr"] < 20) & ~s["masked"] & (s["sigma_t"] > 2.5)
        peak.extend(
            s["photons"][sel]
            / (
                2
                * np.pi
                * np.sqrt((s["sigma_r"][sel] ** 2 + 1 / 12) * (s["sigma_t"][sel] ** 2 + 1 / 12))
            )
        )
    peak = np.array(peak)
    assert len(peak) > 100
    assert np.median(peak) < 8 and np.percentile(peak, 95) < 12


def test_separation_and_blended_by_brute_force(hard):
    """separation: distance to the nearest neighbour with >= half the signal over the sum of
    the two widths along the joining line (checked pair by pair); blended below 1."""
    sim, frames = hard
    n_blended = 0
    for _, _, t in hits(frames)[:2]:
        s = t.spots
        xy = np.stack([s["x"], s["y"]], axis=1)
        covs = np.array(
            [cov_of(sim, *p, r, w) for p, r, w in zip(xy, s["sigma_r"], s["sigma_t"], strict=True)]
        )
        pick = np.concatenate([np.flatnonzero(s["blended"])[:15], np.arange(0, len(xy), 40)])
        for i in pick:
            others = np.flatnonzero(s["signal"] >= 0.5 * s["signal"][i])
            others = others[others != i]
            v = xy[others] - xy[i]
            d = np.hypot(v[:, 0], v[:, 1])
            u = v / d[:, None]
            wi = np.sqrt(np.einsum("ni,ij,nj->n", u, covs[i], u))
            wj = np.sqrt(np.einsum("ni,nij,nj->n", u, covs[others], u))
            best = np.min(d / (wi + wj), initial=np.inf)
            if best < 2:  # the simulator searches every neighbour this close
                assert s["separation"][i] == pytest.approx(best, rel=1e-5)
            else:
                assert s["separation"][i] >= best * (1 - 1e-6)
        np.testing.assert_array_equal(s["blended"], s["separation"] < 1)
        n_blended += s["blended"].sum()
    assert n_blended > 0


def test_zingers_and_hot_pixels_outside_the_mask(hard):
    sim, frames = hard
    mask = sim.geometry.mask
    hot_x = frames[0][1].hot_pixels["x"].astype(int)
    hot_y = frames[0][1].hot_pixels["y"].astype(int)
    assert len(hot_x) == sim.params.hot_pixels and not mask[hot_y, hot_x].any()
    values, zinger_sets = [], []
    for img, t in frames.values():
        # hot pixels: the same positions in every frame, hit or blank
        np.testing.assert_array_equal(t.hot_pixels["x"], hot_x)
        np.testing.assert_array_equal(t.hot_pixels["y"], hot_y)
        values.append(img[hot_y, hot_x].astype(np.float64))
        z = t.zingers
        zx, zy = z["x"].astype(int), z["y"].astype(int)
        assert not mask[zy, zx].any()
        # a zinger adds its counts on top of whatever else the pixel has
        assert np.all(img[zy, zx] >= np.minimum(z["counts"], sim.detector.saturation_value))
        zinger_sets.append(set(zip(zx.tolist(), zy.tolist(), strict=True)))
    # hot pixels fire at their recorded mean rate (Poisson), far above the background
    mean = np.mean(values, axis=0)
    rate = frames[0][1].hot_pixels["counts"]
    draws = len({sim.event(n)[1] for n in frames})  # frames reuse background realisations
    assert np.all(np.abs(mean - rate) < 5 * np.sqrt(rate / draws) + 2)
    assert np.median(rate) > 20 * np.median(
        sim.expected_background(jet_on=True, ice=False, laser_on=False)
    )
    # zingers move from frame to frame
    assert sum(map(len, zinger_sets)) >= 12
    assert len(set.union(*zinger_sets)) > 0.9 * sum(map(len, zinger_sets))
    # blank frames with zingers are their own arrays, not the shared background
    blank = [n for n, (_, t) in frames.items() if not t.hit and len(t.zingers["x"])]
    assert blank and sim.frame_shared(blank[0])[2] is None


def test_preset_overrides_and_errors():
    p = SimParams.preset("hard", detector=DET, hit_fraction=0.2)
    assert p.hit_fraction == 0.2 and p.streaks and p.zingers > 0
    assert SimParams.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert SimParams.preset("default") == SimParams()
    with pytest.raises(ConfigError, match="unknown preset 'harder'.*hard"):
        SimParams.preset("harder")
    with pytest.raises(ConfigError, match="spot-sigma-range"):
        SimParams(spot_sigma_range=(3.0, 1.0))
    with pytest.raises(ConfigError, match="streaks need"):
        SimParams(streaks=True)


def test_cli_preset_writes_a_hard_run_with_artefact_truth(tmp_path):
    out = tmp_path / "run"
    run_xlive(
        "simulate", str(out), "--preset", "hard", "--detector", DET, "--frames", "6",
        "--rate", "0", "--hit-fraction", "0.6", "-q",
    )  # fmt: skip
    desc = json.loads((out / "xlive-run.json").read_text())
    params = SimParams.from_dict(desc["params"])
    assert params == SimParams.preset("hard", detector=DET, hit_fraction=0.6)
    truth = read_truth(out / "truth.zarr")
    sim = Simulation(params)
    np.testing.assert_array_equal(truth["hot_pixels"]["x"], sim.hot_pixel_truth["x"])
    z0, n0 = truth["zinger_start"][2], truth["zinger_count"][2]
    _, t2 = sim.frame(int(truth["frame_number"][2]))
    np.testing.assert_array_equal(truth["zingers"]["x"][z0 : z0 + n0], t2.zingers["x"])
    assert truth["spots"]["sigma_t"].min() >= 1.5 and truth["spots"]["sigma_t"].max() <= 3.5
