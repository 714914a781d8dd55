"""Spot finding at the integrated SNR, and the per-frame features that come from the spots.

Per frame: (1) one pass builds per-ring value histograms (rings one pixel wide in radius, as
peakfinder8); iterative sigma clipping on them gives each ring a robust background mean and
sigma; (2) detection at the integrated SNR (``method = "integrated"``): block
sums of the frame give the integrated SNR of windows of 3 x 3, 6 x 6 and 9 x 9 pixels against
the ring background, a matched filter the size of a spot, sharp or broad
(:mod:`xlive.analyzers._kernels.blocks`); around the significant windows, a watershed of the
3 x 3 local sums keeps one peak per spot, splits crowded neighbours at their saddle, measures
each spot over its footprint and rejects single-pixel zingers and hot pixels
(:mod:`xlive.analyzers._kernels.watershed`); broad peaks are placed (and split) by fitted
Gaussians, and the significance of the frame minus the fitted spots is searched once more
for spots the watershed merged into a neighbour (:mod:`xlive.analyzers._kernels.psf_fit`). ``method = "threshold"`` (the default) is the peakfinder8-class
finder of pixels above ``max(adc_threshold, mean + pixel_snr * sigma)``
(:mod:`xlive.analyzers._kernels.peaks`). (3) The peak table (strongest ``max_peaks`` by SNR, NaN
padded) and the spot features (:mod:`xlive.analyzers.spot_stats`) follow from the spots found.
The first pass also gives ``total_intensity`` and ``n_saturated`` at no extra cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..conventions import D_UNITS, FRAME, ICE_D_SPACINGS, PEAK
from ..errors import AnalyzerError
from ..geometry.core import Geometry
from ..validate import check_fields
from ._kernels.blocks import (
    BLOCK,
    BlockRingTable,
    block_background,
    block_seeds,
    block_shape,
    block_sums,
    detect_blocks,
    detect_scratch,
    radial_tolerance_sd,
    ring_table,
)
from ._kernels.neighbours import window_medians
from ._kernels.peaks import find_peaks, merge_close_peaks, pixels_above
from ._kernels.psf_fit import fit_spots, residual_seeds
from ._kernels.watershed import find_spots
from .base import FeatureSpec, as_block, photon_frames, valid_range
from .rings import RingBinning
from .spot_stats import SpotStatsParams, spot_feature_specs, spot_features

#: spot-finding methods of :class:`SpotParams`
METHODS = ("integrated", "threshold")


@dataclass(frozen=True, kw_only=True)
class SpotParams:
    """Settings of the spot finder and the hit rule."""

    #: "integrated" (windows of spot size reaching ``detect_snr``, one peak per spot by a
    #: watershed) or "threshold" (peakfinder8-class: pixels above ``adc_threshold`` and
    #: ``pixel_snr``). "threshold" stays the default for now: on a real CeO2 powder (PILATUS
    #: 1M) the integrated sums turn the rings' flanks into thousands of spots.
    method: str = "threshold"
    #: integrated SNR a 3x3, 6x6 or 9x9 pixel window must reach to be looked at ("integrated")
    detect_snr: float = 5.0
    #: edge (pixels, a multiple of 3) of the boxes in which the background left over by the
    #: ring means (beam-stop shadows, diffuse blobs) is measured and removed; 0: ring means
    #: only ("integrated")
    bg_box: int = 48
    #: how far (pixels, in radius) the rings may be off where a pixel is (beam centre, tilt,
    #: ring width): on a sharp ring's flank, that much of the ring profile's slope is added
    #: to the windows' noise, coherently over the window ("integrated")
    radial_tolerance: float = 0.5
    #: blocks next to an invalid pixel (module gaps, masked pixels) do not seed spots when,
    #: in the frame, their mean normalised residual is above this: module edge pixels are
    #: larger or calibrated worse on some detectors (a PILATUS's row beside a gap is a third
    #: brighter), and would be summed into spots; 0: always skip them, negative: never
    #: ("integrated")
    module_edge_excess: float = 0.25
    #: half-width (pixels) of the local sums G the watershed runs on: 1 for 3x3, 2 for 5x5
    #: ("integrated")
    smooth: int = 2
    #: a pixel is in a spot's footprint when its local sum G reaches this many background
    #: sigmas ("integrated")
    floor_snr: float = 2.0
    #: two peaks are two spots when the lower one stands above the saddle between them by
    #: split_snr sigmas of that difference ...
    split_snr: float = 0.0
    #: ... and by this fraction of its height ("integrated")
    split_frac: float = 0.03
    #: peaks closer than this (pixels) are one spot, also when their footprints do not touch
    #: (a broad weak spot's footprint broken by noise; "integrated")
    min_separation: float = 3.5
    #: scale (pixels) of the Laplacian of Gaussian whose maxima split a component hiding
    #: several spots (a weak spot on a stronger one's flank, broad spots a few widths
    #: apart); 0: no such split ("integrated")
    split_log_sigma: float = 2.5
    #: half-width (pixels) of the windows in which broad peaks' shapes (2-D Gaussians, widths
    #: along and across the radius) are fitted with their neighbours' and placed by the
    #: fit (:mod:`xlive.analyzers._kernels.psf_fit`); 0: no fits ("integrated")
    fit_radius: int = 4
    #: peaks with this many footprint pixels or more are fitted ("integrated")
    fit_min_pixels: int = 60
    #: a fitted peak becomes two spots when two Gaussians lower the chi-square by this much
    #: or more; 0: never ("integrated")
    split_chi2: float = 30.0
    #: half-width (pixels) of the windows of those two-spot fits for spots fitted
    #: fit_split_sigma px wide or more along either axis (fit_radius for the others);
    #: 0: fit_radius ("integrated")
    fit_split_radius: int = 0
    fit_split_sigma: float = 0.0
    #: candidates (below fit_snr, and the residual's seeds) whose fitted position's standard
    #: error (Fisher, all five parameters free) exceeds this (pixels) are not reported: weak
    #: spots in a crowd placed pixels off. On the hard preset 1.0 trades ~0.3 point of
    #: recall for ~0.5 of precision; 0: off ("integrated")
    fit_max_pos_err: float = 0.0
    #: after the fits, candidates also at the local maxima of the significance of the
    #: frame minus the fitted spots (a Gaussian of seed_sigma px, the matched filter of a
    #: spot) reaching seed_snr, seed_dist px or more from every spot found: spots the
    #: watershed merged into a neighbour; then all is fitted again. On the hard preset 4
    #: raises recall by 0.5-2.4 points for 0.2-0.5 of precision, but it costs a full-frame
    #: filter and the fits twice (EIGER 4M full set ~6x) and on a real Timepix electron
    #: pattern it adds a quarter more spots (122 -> 156): off by default; 0: off
    #: ("integrated", with candidate_snr)
    seed_snr: float = 0.0
    seed_sigma: float = 2.0
    seed_dist: float = 4.0
    #: broad peaks are fitted jointly with up to fit_group - 1 broad neighbours within
    #: fit_reach pixels (all free), and one spot more is tried in each such group; 0: one
    #: spot at a time against its subtracted neighbours ("integrated")
    fit_group: int = 0
    fit_reach: float = 6.0
    #: the box searched for one spot more around a broad peak reaches this many pixels
    #: beyond its fit window, and sums of 2 fit_search_half + 1 pixels square are searched
    fit_search: int = 0
    fit_search_half: int = 1
    #: the SNR (fitted flux over its Fisher error) one spot more must reach
    fit_new_snr: float = 5.0
    #: when above 0 (and below min_snr and fit_snr), the watershed keeps peaks down to this
    #: integrated SNR, and those below fit_snr are fitted (a Gaussian, widths free) and kept
    #: when the fitted flux reaches fit_snr times its Fisher error (a matched filter, surer
    #: than the footprint's sum on broad weak spots) and they are >= 1 px wide; 0: off
    #: ("integrated", with fit_radius)
    candidate_snr: float = 2.5
    fit_snr: float = 6.5
    #: sharp peaks (brightest pixel >= 0.1 of the intensity) at min_snr or more are
    #: candidates too (judged by their fit): drops zingers and hot pixels the watershed
    #: kept, and weak sharp spots; costs fits on every frame ("integrated")
    candidate_sharp: bool = False
    #: pixels at or below this many photons never seed a spot (peakfinder8's adc_thresh, which
    #: is in ADU: here ``adc_threshold * gain``)
    adc_threshold: float = 5.0
    #: a pixel joins a spot above ring mean + pixel_snr * ring sigma (peakfinder8's minimum_snr)
    pixel_snr: float = 5.0
    #: minimum integrated SNR of a spot, I / sqrt(gain I + n_pixels * background variance)
    #: (over its footprint for "integrated")
    min_snr: float = 5.0
    #: sigma-clipping level for the ring statistics
    clip_sigma: float = 3.0
    #: ring width in pixels (radius) for the ring statistics
    ring_width: float = 1.0
    #: fewest pixels in a spot (above threshold; "integrated": in its footprint)
    min_pixels: int = 1
    #: most pixels in a spot (above threshold; "integrated": in its footprint)
    max_pixels: int = 1000
    #: half-width (pixels) of the box around a spot giving its local background
    local_bg_radius: int = 5
    #: a spot is a zinger or hot pixel when one pixel holds more than this fraction of its
    #: intensity ("threshold": one-pixel spots; "integrated": the brightest pixel's share of
    #: the net signal of its 3x3 neighbourhood, where a real spot spreads over the PSF)
    max_single_fraction: float = 0.9
    #: rows of the peak table (strongest by SNR); ``n_spots`` counts all spots found
    max_peaks: int = 256
    #: peaks closer than this (pixels) are one spot split by a pixel below threshold
    merge_radius: float = 2.0
    #: most peaks measured per frame (the statistics use all of them)
    max_found: int = 8192
    #: fewest spots (off the ice rings) for a hit
    min_spots_hit: int = 15
    #: most spots for a hit (beyond: something else than a crystal)
    max_spots_hit: int = 100_000
    #: half-width (1/nm) of the ice-ring windows whose spots the hit rule ignores
    ice_ring_halfwidth: float = 0.15
    #: radial width (pixels) of the shells in which powder rings are looked for
    powder_ring_width: float = 6.0
    #: azimuthal sectors of a shell; a powder ring puts spots in many of those on the detector
    powder_sectors: int = 36
    #: a shell is a powder ring with at least this many spots ...
    powder_min_spots: int = 8
    #: ... spread over at least this fraction of its sectors on the detector ...
    powder_coverage: float = 0.3
    #: ... and this many times the spot density (per pixel) of the shells beside it
    powder_contrast: float = 3.0
    #: spots on a ring whose background (clipped ring mean) stands this fraction above the
    #: median of the rings within ``powder_ring_width`` beside it are on a powder ring too:
    #: a sharp ring that most of its pixels share (the finder may report only a few spots on
    #: it: its pixels' spread is part of its noise); 0: off
    powder_ring_contrast: float = 0.2
    #: frames with at least this fraction of their spots on powder rings are no hits
    max_powder_score: float = 0.5
    #: candidate pixels kept from the first pass (beyond: a second full pass)
    max_candidates: int = 1 << 18
    #: settings of the spot features
    stats: SpotStatsParams = field(default_factory=SpotStatsParams)

    def __post_init__(self):
        check_fields(
            self,
            "analyzers.spots",
            error=AnalyzerError,
            ranges={
                "adc_threshold": (None, None),
                "pixel_snr": (0, None),
                "min_snr": (0, None),
                "clip_sigma": (0.1, None),
                "ring_width": (0.001, None),
                "min_pixels": (1, None),
                "max_pixels": (1, None),
                "local_bg_radius": (1, 1000),
                "max_single_fraction": (0, 1),
                "max_peaks": (1, 1000000),
                "max_found": (1, 1_000_000),  # a (max_found, 7) table per frame
                "min_spots_hit": (0, None),
                "max_spots_hit": (0, None),
                "ice_ring_halfwidth": (0, None),
                "max_candidates": (1, 1 << 25),  # int64 per frame; > any detector's pixels
                "detect_snr": (0.1, None),
                "floor_snr": (0, None),
                "split_snr": (0, None),
                "split_frac": (0, 1),
                "min_separation": (0, None),
                "split_log_sigma": (0, 20),
                "fit_radius": (0, 20),
                "fit_min_pixels": (1, None),
                "split_chi2": (0, None),
                "fit_group": (0, 8),
                "fit_reach": (0, 16),
                "candidate_snr": (0, None),
                "fit_snr": (0, None),
                "fit_search": (0, 12),
                "fit_search_half": (0, 4),
                "fit_new_snr": (0, None),
                "smooth": (1, BLOCK),
                # detect_blocks holds (bg_box / 3)^2 values per box of a row of boxes: 100000
                # wanted ~30 GB; 1024 px (a quarter of an EIGER2 16M) ~15 MB
                "bg_box": (0, 1024),
                "fit_split_radius": (0, 40),
                "fit_split_sigma": (0, None),
                "fit_max_pos_err": (0, None),
                "seed_snr": (0, None),
                "seed_sigma": (0.5, 10),
                "seed_dist": (0, 100),
                "powder_ring_width": (0.5, None),
                "powder_sectors": (1, 3600),
                "powder_min_spots": (0, None),
                "powder_coverage": (0, 1),
                "powder_contrast": (0, None),
                "max_powder_score": (0, None),
                "powder_ring_contrast": (0, None),
                "radial_tolerance": (0, 100),
            },
        )
        if self.method not in METHODS:
            raise AnalyzerError(
                f"analyzers.spots method must be one of {', '.join(map(repr, METHODS))}, "
                f"got {self.method!r}"
            )
        if self.ring_width <= 0 or self.max_peaks < 1 or self.min_pixels < 1:
            raise AnalyzerError("spot finder: ring_width > 0, max_peaks >= 1, min_pixels >= 1")


def ring_index(radius_px: np.ndarray, mask: np.ndarray, width: float) -> np.ndarray:
    """Ring of each pixel (``floor(radius / width)``), -1 where masked."""
    with np.errstate(invalid="ignore"):
        r = np.floor(radius_px / width)
    return np.where(mask | ~np.isfinite(r), -1, r).astype(np.int32)


class SpotFinder:
    """Spots, the peak table, ``is_hit`` and the spot-derived per-frame features.

    Examples
    --------
    >>> from xlive.simulate import Simulation
    >>> sim = Simulation(detector="eiger500k", seed=1, hit_fraction=1.0)
    >>> sf = SpotFinder(sim.geometry)
    >>> out = sf(sim.frame(0)[0][None])
    >>> bool(out["is_hit"][0])
    True
    """

    name = "spots"
    params_class = SpotParams

    def __init__(self, geometry: Geometry, params: SpotParams | None = None):
        self.geometry = geometry
        self.params = p = params or SpotParams()
        if p.method == "integrated" and p.fit_radius > 0 and min(geometry.shape) < 3:
            raise AnalyzerError(  # fit_shapes takes the radial direction from 3 x 3 pixels
                f"[analyzers.spots] frames of {geometry.shape[0]} x {geometry.shape[1]} pixels "
                "are too small for the spot fits (fit_radius > 0 needs 3 pixels or more each "
                'way): set fit_radius = 0, or method = "threshold"'
            )
        maps = geometry.maps
        self.mask = maps.mask
        radius_px = maps.radius / geometry.pixel_size
        gain = geometry.gain
        #: ADU per photon the kernels see (frames of panels with different gains are
        #: converted to photons first: see :func:`~.base.photon_frames`)
        self.gain = float(gain) if gain is not None else 1.0
        self.adc_level = p.adc_threshold * self.gain
        #: read-noise floor of the noise model, ADU
        self.read_sigma = geometry.read_noise * self.gain
        self.binning = RingBinning(
            ring_index(radius_px, maps.mask, p.ring_width), clip_sigma=p.clip_sigma, gain=self.gain
        )
        self.d_map = maps.d.astype(np.float32)
        self.q_map = maps.q.astype(np.float32)
        # powder rings: radius in shell widths, azimuthal sector of every pixel, and per shell
        # (two grids offset by half a shell, so that a ring is never split) the sectors it
        # has on the detector and its pixel count
        self.radius_px = radius_px
        sector = np.floor((maps.azimuth + np.pi) / (2 * np.pi) * p.powder_sectors)
        self.sector_map = np.clip(np.nan_to_num(sector), 0, p.powder_sectors - 1).astype(np.int16)
        ok = ~maps.mask & np.isfinite(radius_px)
        self.powder_grids = []
        for offset in (0.0, 0.5):
            shell = np.floor(radius_px[ok] / p.powder_ring_width + offset).astype(np.int64)
            n = int(shell.max(initial=-1)) + 1
            cover = np.zeros(max(n, 1) * p.powder_sectors, bool)
            cover[shell * p.powder_sectors + self.sector_map[ok]] = True
            self.powder_grids.append(
                (
                    offset,
                    cover.reshape(-1, p.powder_sectors).sum(axis=1),
                    np.bincount(shell, minlength=max(n, 1)).astype(float),
                )
            )
        #: rings of each 3x3 block's pixels, for the block backgrounds of the integrated
        #: method (built on first use)
        self._block_table = None
        sat = geometry.saturation_value
        # frames converted to photons (panels of different gains) lose the ADU saturation level
        self.saturation = float(sat) if sat is not None and gain is not None else np.inf

    # ------------------------------------------------------------------ declarations
    def describe(self) -> list[FeatureSpec]:
        p = self.params
        size = {PEAK: p.max_peaks}
        table = [
            FeatureSpec(
                "peak_x",
                (FRAME, PEAK),
                "float32",
                "pixel",
                "spot centroid x (array-index coordinates)",
                sizes=size,
            ),
            FeatureSpec(
                "peak_y",
                (FRAME, PEAK),
                "float32",
                "pixel",
                "spot centroid y (array-index coordinates)",
                sizes=size,
            ),
            FeatureSpec(
                "peak_intensity",
                (FRAME, PEAK),
                "float32",
                "photons",
                "background-subtracted integrated intensity",
                sizes=size,
            ),
            FeatureSpec(
                "peak_npix", (FRAME, PEAK), "float32", "pixel", "pixels above threshold", sizes=size
            ),
            FeatureSpec(
                "peak_snr",
                (FRAME, PEAK),
                "float32",
                "",
                "integrated SNR I / sqrt(I + n var_bg), in photons",
                sizes=size,
            ),
            FeatureSpec(
                "peak_d", (FRAME, PEAK), "float32", D_UNITS, "d-spacing at the spot", sizes=size
            ),
        ]
        return [
            FeatureSpec("n_spots", (FRAME,), "int32", "", "spots found", fill=0),
            FeatureSpec(
                "total_intensity",
                (FRAME,),
                "float64",
                "photons",
                "sum of valid unmasked pixel values over the gain",
            ),
            FeatureSpec(
                "n_saturated",
                (FRAME,),
                "int32",
                "",
                "unmasked pixels at or above the saturation value",
                fill=0,
            ),
            FeatureSpec(
                "is_hit",
                (FRAME,),
                "bool",
                "",
                "min_spots_hit <= spots off the ice and powder rings <= max_spots_hit, "
                "powder_score < max_powder_score",
                fill=0,
            ),
            FeatureSpec(
                "powder_score",
                (FRAME,),
                "float32",
                "",
                "fraction of the spots on powder rings (shells whose spots fill most "
                "of the ring): 0 for a crystal, near 1 for a powder",
                fill=0,
            ),
            *table,
            *spot_feature_specs(),
        ]

    def coords(self) -> dict[str, tuple[str, np.ndarray, dict]]:
        return {}

    # ------------------------------------------------------------------ compute
    def find(self, frame: np.ndarray) -> np.ndarray:
        """Peaks of one 2-D frame: rows ``(x, y, intensity, npix, snr, background, max)``,
        intensity, background and max in ADU."""
        frame, _ = photon_frames(frame, self.geometry)
        return self._find(frame)[0]

    def _find(self, frame: np.ndarray):
        p = self.params
        lo, hi = valid_range(frame.dtype, self.geometry)
        cand = np.empty(p.max_candidates, np.int64)
        res = self.binning.run(frame, lo, hi, self.saturation, self.adc_level, cand)
        return self.peaks_from_rings(frame, res, cand), res

    def peaks_from_rings(self, frame: np.ndarray, res, cand: np.ndarray, blocks=None) -> np.ndarray:
        """Peaks of ``frame`` given its ring statistics ``res`` and candidate buffer ``cand``;
        ``blocks``: the frame's block sums ``(bsum, bn)`` if already made (integrated method)."""
        p = self.params
        lo, hi = valid_range(frame.dtype, self.geometry)
        sigma = np.maximum(res.sigma, self.read_sigma)  # noise model: never below read noise
        if p.method == "integrated":
            return self.integrated_peaks(frame, res.mean, sigma**2, lo, hi, blocks)
        thr = np.maximum(self.adc_level, res.mean + p.pixel_snr * sigma)
        thr = np.where(np.isfinite(thr), thr, np.inf)
        if res.n_candidates <= cand.size:
            cand = cand[: res.n_candidates]
        else:
            cand = pixels_above(frame, self.binning.rings, thr, lo, hi)
        out = np.empty((p.max_found, 7))
        n = find_peaks(
            frame,
            self.binning.rings,
            thr,
            res.mean,
            res.sigma,
            lo,
            hi,
            cand,
            p.min_pixels,
            p.max_pixels,
            p.local_bg_radius,
            p.min_snr,
            p.max_single_fraction,
            self.gain,
            self.read_sigma**2,
            out,
        )
        return merge_close_peaks(out[: min(n, p.max_found)], p.merge_radius)

    def integrated_peaks(self, frame, mean, var, lo, hi, blocks=None) -> np.ndarray:
        """Spots by their integrated SNR (see the module docstring); rows as :meth:`find`.
        ``blocks``: ``(bsum, bn)`` of :func:`block_sums` if the caller made them already."""
        p = self.params
        nb = block_shape(frame.shape)
        if blocks is None:
            bsum = np.zeros(nb)
            bn = np.zeros(nb, np.int32)
            block_sums(frame, self.binning.rings, lo, hi, BLOCK, bsum, bn)
        else:
            bsum, bn = blocks
        t = self.block_table
        sdg = radial_tolerance_sd(mean, p.radial_tolerance)
        if p.bg_box > 0:  # the whole detection stage in one kernel, per-thread buffers
            sb = max(p.bg_box // BLOCK, 1)
            sc = detect_scratch(nb, (-(-nb[0] // sb), -(-nb[1] // sb)))
            resid, seeds = sc["resid"], sc["seeds"]
            detect_blocks(
                t.r0, t.span_count, t.n_fixed, t.ptr, t.ring, t.count, t.n_static,
                ring_table(mean, var, sdg, t.span), bsum, bn, frame, self.binning.rings, lo,
                hi, mean, var, sdg, BLOCK, sb, 2.5, p.module_edge_excess, self.gain,
                p.detect_snr, sc["net0"], sc["nvar"], sc["nsd"], sc["nuse"], sc["edge"],
                sc["rbox"], sc["sbox"], resid, seeds,
            )  # fmt: skip
        else:
            resid, seeds = self._ring_means_only(frame, mean, var, sdg, lo, hi, bsum, bn)
        out = np.empty((p.max_found, 7))
        n = find_spots(
            frame,
            self.binning.rings,
            mean,
            resid,
            BLOCK,
            var,
            lo,
            hi,
            seeds,
            BLOCK,
            p.smooth,
            self.gain,
            p.floor_snr,
            p.split_snr,
            p.split_frac,
            p.min_separation,
            p.candidate_snr if self._candidates else p.min_snr,
            p.max_single_fraction,
            p.min_pixels,
            p.max_pixels,
            out,
            log_sigma=p.split_log_sigma,
        )
        found = out[: min(n, p.max_found)]
        if p.fit_radius > 0 and len(found):
            if p.seed_snr > 0 and self._candidates:
                # fit, subtract, look again: spots the watershed merged into a neighbour
                model = np.zeros(frame.shape)
                fitted = self.fit_shapes(frame, mean, resid, var, lo, hi, found, model)
                extra = self.extra_seeds(frame, mean, resid, var, lo, hi, fitted, model)
                found = np.concatenate([found, extra])
            found = self.fit_shapes(frame, mean, resid, var, lo, hi, found)
        return merge_close_peaks(found, max(p.merge_radius, p.min_separation))

    def _ring_means_only(self, frame, mean, var, sdg, lo, hi, bsum, bn):
        """``(resid, seeds)`` of the detection stage with ``bg_box = 0``: the ring means
        are the whole background (no box leftover, scale 1), kernel by kernel."""
        p = self.params
        t = self.block_table
        nb = bsum.shape
        net0, nvar, nsd = np.empty(nb), np.empty(nb), np.empty(nb)
        nuse = np.empty(nb, np.int32)
        block_background(
            t.ptr, t.ring, t.count, t.n_static, bsum, bn, frame, self.binning.rings,
            lo, hi, mean, var, sdg, BLOCK, net0, nvar, nsd, nuse,
        )  # fmt: skip
        resid = np.zeros(nb)
        seeds = np.zeros(nb, np.uint8)
        args = (net0, nvar, nsd, nuse, resid, np.ones(nb), 1, BLOCK, frame.shape)
        block_seeds(*args, p.module_edge_excess, self.gain, p.detect_snr, seeds)
        return resid, seeds

    def extra_seeds(self, frame, mean, resid, var, lo, hi, found, model) -> np.ndarray:
        """Candidate rows (as :meth:`find`'s) at the local maxima of the matched-filter
        significance of the net frame minus ``model`` (the spots fitted so far; Gaussian
        of ``seed_sigma`` px) reaching ``seed_snr``, ``seed_dist`` px or more from every
        peak of ``found`` (:func:`~._kernels.psf_fit.residual_seeds`): spots the watershed
        merged into a neighbour. Judged by their fits as the watershed's candidates are."""
        p = self.params
        seeds = residual_seeds(
            frame, self.binning.rings, mean, resid, BLOCK, var, lo, hi, self.gain, model,
            p.seed_sigma, p.seed_snr,
        )  # fmt: skip
        if len(found) and len(seeds):
            from scipy.spatial import cKDTree

            seeds = seeds[cKDTree(found[:, :2]).query(seeds[:, :2])[0] >= p.seed_dist]
        rows = np.zeros((len(seeds), 7))
        rows[:, :2] = seeds[:, :2]
        # flux of a spot of width seed_sigma from its filtered value (start of its fit)
        rows[:, 2] = np.maximum(seeds[:, 3] * 2.0 * np.pi * p.seed_sigma**2, 1.0)
        rows[:, 3] = p.fit_min_pixels  # fitted, and a candidate: below min_snr, not sharp
        rows[:, 4] = min(p.candidate_snr, p.min_snr)
        ix = seeds[:, 0].astype(np.int64)
        iy = seeds[:, 1].astype(np.int64)
        r = self.binning.rings[iy, ix]
        rows[:, 5] = np.asarray(mean)[np.maximum(r, 0)] + resid[iy // BLOCK, ix // BLOCK]
        rows[:, 6] = rows[:, 5]
        return rows

    @property
    def _candidates(self) -> bool:
        """Whether peaks below ``min_snr`` are detected and kept by their fits."""
        p = self.params
        return p.fit_radius > 0 and 0 < p.candidate_snr < min(p.min_snr, p.fit_snr)

    def fit_shapes(self, frame, mean, resid, var, lo, hi, found, model=None) -> np.ndarray:
        """``found`` (rows of :meth:`find`) placed and split by fitted spot shapes
        (:func:`~._kernels.psf_fit.fit_spots`)."""
        p = self.params
        ny, nx = frame.shape
        ix = np.clip(np.rint(found[:, 0]).astype(np.int64), 1, nx - 2)
        iy = np.clip(np.rint(found[:, 1]).astype(np.int64), 1, ny - 2)
        r = self.radius_px  # the radial direction at each peak
        dirs = np.stack([r[iy, ix + 1] - r[iy, ix - 1], r[iy + 1, ix] - r[iy - 1, ix]], axis=1)
        norm = np.hypot(dirs[:, 0], dirs[:, 1])
        good = np.isfinite(norm) & (norm > 0)
        dirs = np.where(good[:, None], dirs / np.where(good, norm, 1.0)[:, None], [1.0, 0.0])
        out = np.empty((min(2 * len(found), p.max_found), 7))
        n = fit_spots(
            frame, self.binning.rings, mean, resid, BLOCK, var, lo, hi, self.gain, found, dirs,
            out, min_pixels=p.fit_min_pixels, radius=p.fit_radius, split_chi2=p.split_chi2,
            min_snr=p.min_snr, min_dist=max(p.merge_radius, p.min_separation),
            group=p.fit_group, reach=p.fit_reach, keep_snr=p.fit_snr if self._candidates else 0.0,
            ext=p.fit_search, hs=p.fit_search_half, new_snr=p.fit_new_snr,
            sharp_cand=p.candidate_sharp, split_radius=p.fit_split_radius,
            split_sigma=p.fit_split_sigma, max_pos_err=p.fit_max_pos_err, model=model,
        )  # fmt: skip
        return out[: min(n, out.shape[0])]

    @property
    def block_table(self) -> BlockRingTable:
        """Rings of each block's pixels (:class:`~._kernels.blocks.BlockRingTable`)."""
        if self._block_table is None:
            self._block_table = BlockRingTable(self.binning.rings, BLOCK)
        return self._block_table

    def features(self, peaks: np.ndarray, res, result: dict, k: int) -> None:
        """Write frame ``k``'s features from its peaks and ring pass into ``result``."""
        p = self.params
        ny, nx = self.geometry.shape
        result["total_intensity"][k] = res.total / self.gain
        result["n_saturated"][k] = res.n_saturated
        ix = np.clip(np.rint(peaks[:, 0]).astype(np.int64), 0, nx - 1)
        iy = np.clip(np.rint(peaks[:, 1]).astype(np.int64), 0, ny - 1)
        d = self.d_map[iy, ix].astype(np.float64)
        q = self.q_map[iy, ix].astype(np.float64)
        result["n_spots"][k] = len(peaks)
        off_ice = ~_on_ice_rings(q, p.ice_ring_halfwidth)
        powder = self.on_powder_rings(ix, iy) | self.on_sharp_rings(ix, iy, res)
        result["powder_score"][k] = powder.mean() if powder.size else 0.0
        crystal = np.count_nonzero(off_ice & ~powder)
        result["is_hit"][k] = (
            p.min_spots_hit <= crystal <= p.max_spots_hit
            and result["powder_score"][k] < p.max_powder_score
        )
        order = np.argsort(-peaks[:, 4], kind="stable")[: p.max_peaks]
        m = order.size
        for name, col in (("peak_x", 0), ("peak_y", 1), ("peak_npix", 3), ("peak_snr", 4)):
            result[name][k, :m] = peaks[order, col]
        result["peak_intensity"][k, :m] = peaks[order, 2] / self.gain
        result["peak_d"][k, :m] = d[order]
        for name, value in spot_features(peaks, d, self.geometry, p.stats).items():
            result[name][k] = value

    def on_powder_rings(self, ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
        """Which spots (pixel indices) lie on powder rings.

        A shell ``powder_ring_width`` pixels wide is a powder ring when it holds at least
        ``powder_min_spots`` spots, in at least ``powder_coverage`` of the azimuthal sectors
        it has on the detector, at ``powder_contrast`` times the spot density of the shells
        beside it: a powder fills its rings, while a crystal's spots in one thin shell are
        few, bunched and as dense as in the next shells. Rings are only sharp about the right
        beam centre: a stale one smears them over several shells.
        """
        p = self.params
        out = np.zeros(ix.size, bool)
        if ix.size < p.powder_min_spots:
            return out
        r = self.radius_px[iy, ix]
        sec = self.sector_map[iy, ix].astype(np.int64)
        on = np.isfinite(r)
        for offset, sectors, pixels in self.powder_grids:
            n = sectors.size
            shell = np.clip(
                np.floor(np.where(on, r, 0) / p.powder_ring_width + offset), 0, n - 1
            ).astype(np.int64)
            counts = np.bincount(shell[on], minlength=n)
            filled = np.bincount(
                np.unique(shell[on] * p.powder_sectors + sec[on]) // p.powder_sectors, minlength=n
            )
            density = counts / np.maximum(pixels, 1.0)
            pad = np.pad(density, 3)
            beside = (pad[0:n] + pad[1 : n + 1] + pad[5 : n + 5] + pad[6 : n + 6]) / 4
            ring = (
                (counts >= p.powder_min_spots)
                & (filled >= p.powder_coverage * np.maximum(sectors, 1))
                & (density >= p.powder_contrast * beside)
            )
            out |= on & ring[shell]
        return out

    def sharp_rings(self, res) -> np.ndarray:
        """Rings (one per ring of the statistics) on a sharp powder or ice ring: the clipped
        ring mean stands ``powder_ring_contrast`` above the median of the rings up to
        ``powder_ring_width`` pixels beside it (a broad water ring or a slope does not), by
        more than 5 standard errors; widened by one ring each side."""
        p = self.params
        m = np.asarray(res.mean, float)
        n = m.size
        half = max(int(round(p.powder_ring_width / p.ring_width)), 2)
        sharp = np.zeros(n, bool)
        if p.powder_ring_contrast <= 0 or n < 2 * half + 1:
            return sharp
        # windows without statistics stay NaN, without a warning
        base = window_medians(m, half)
        err = np.asarray(res.sigma, float) / np.sqrt(np.maximum(res.count, 1))
        with np.errstate(invalid="ignore"):
            excess = m - base
            sharp = (excess > p.powder_ring_contrast * np.abs(base)) & (excess > 5 * err)
        sharp[1:] |= sharp[:-1].copy()
        sharp[:-1] |= sharp[1:].copy()
        return sharp

    def on_sharp_rings(self, ix: np.ndarray, iy: np.ndarray, res) -> np.ndarray:
        """Which spots (pixel indices) lie on a sharp ring of the frame's ring means
        (:meth:`sharp_rings`)."""
        if ix.size == 0:
            return np.zeros(0, bool)
        ring = self.binning.rings[iy, ix]
        sharp = self.sharp_rings(res)
        return (
            (ring >= 0) & sharp[np.clip(ring, 0, max(sharp.size - 1, 0))]
            if sharp.size
            else ring < -1
        )

    def __call__(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        frames, _ = photon_frames(as_block(frames, self.geometry.shape, self.name), self.geometry)
        result = {s.name: s.empty(frames.shape[0]) for s in self.describe()}
        for k, frame in enumerate(frames):
            peaks, res = self._find(frame)
            self.features(peaks, res, result, k)
        return result


def _on_ice_rings(q: np.ndarray, halfwidth: float) -> np.ndarray:
    q_ice = 20.0 * np.pi / np.asarray(ICE_D_SPACINGS)
    return (np.abs(q[:, None] - q_ice[None, :]) <= halfwidth).any(axis=1)
