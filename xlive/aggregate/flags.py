"""Red flags: named rules over the running aggregates, with thresholds and plain-language messages.

Each rule reads :class:`~xlive.aggregate.running.RunAggregates` and returns a :class:`Flag` when its
condition holds over the recent window. Thresholds live in :class:`FlagThresholds` (the
``[flags]`` table of the run configuration). Analyzers add their own flags by declaring a
:class:`~xlive.analyzers.base.FeatureFlag` on an output (:func:`feature_flags`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..validate import check_fields
from .flag import Flag  # noqa: F401 (re-exported: xlive.aggregate.flags.Flag)
from .running import RunAggregates


@dataclass(frozen=True, kw_only=True)
class FlagThresholds:
    """When each flag fires (evaluated over the last ``window`` frames)."""

    #: frames the rules look back over
    window: int = 100
    #: frames needed before any rule speaks
    min_frames: int = 30
    #: jet lost: median jet_score over the last ``jet_window`` frames below this
    jet_score_min: float = 0.3
    jet_window: int = 20
    #: hit rate dropped: recent rate below this fraction of the run's rate
    hit_rate_drop: float = 0.4
    #: ... and the run's rate at least this (too few hits say nothing)
    hit_rate_min_run: float = 0.05
    #: ice: fraction of recent frames whose ice_score exceeds ice_score_min
    ice_score_min: float = 0.5
    ice_fraction: float = 0.2
    #: multiple lattices: fraction of recent indexed hits with two lattices or more
    multi_lattice_fraction: float = 0.3
    #: (no longer used: the multiple-lattice flag reads the lattices found by indexing)
    multi_lattice_score_min: float = 0.1
    #: indexing flags speak after this many hits tried
    index_min_hits: int = 20
    #: hits do not index: fraction of recent hits indexed below this
    index_rate_min: float = 0.1
    #: indexing rate dropped: recent rate below this fraction of the run's rate
    index_rate_drop: float = 0.5
    #: cell differs: fraction of recent hits indexing only to another cell than the given one
    cell_differs_fraction: float = 0.3
    #: second cell population: the second-largest population's share of recent cells ...
    second_cell_fraction: float = 0.15
    #: ... among the cells of the last this many indexed lattices
    cell_window: int = 500
    #: saturation: median saturated pixels per recent hit above this
    saturated_pixels: float = 20.0
    #: sample dying: mean spot intensity of hits fell by this fraction along the run
    dying_drop: float = 0.3
    #: frames dropped: any gap in the detector's frame numbers
    dropped_frames: int = 1
    #: new hot pixels: at least this many hot pixels outside the detector mask
    hot_pixels: int = 1
    #: beam centre suspect: rings off-centre by more than this (pixels) ...
    beam_offset_px: float = 3.0
    #: ... judged only when the rings correlate at least this well
    beam_quality_min: float = 0.5
    #: ... and over at least this many frames of the mean image (a sample: every 10th frame)
    beam_min_frames: int = 10
    #: analysed frames between two evaluations of the windowed rules (live and replayed alike)
    check_every: int = 10
    #: analysed frames between two evaluations of the rules over the whole run
    slow_every: int = 200

    def __post_init__(self):
        check_fields(
            self,
            "flags",
            error=ConfigError,
            ranges={
                "window": (1, None),
                "min_frames": (0, None),
                "jet_score_min": (0, None),
                "jet_window": (1, None),
                "hit_rate_drop": (0, 1),
                "hit_rate_min_run": (0, 1),
                "ice_score_min": (0, None),
                "ice_fraction": (0, 1),
                "multi_lattice_score_min": (0, 1),
                "multi_lattice_fraction": (0, 1),
                "saturated_pixels": (0, None),
                "dying_drop": (0, 1),
                "dropped_frames": (1, None),
                "hot_pixels": (1, None),
                "beam_offset_px": (0, None),
                "beam_quality_min": (0, 1),
                "beam_min_frames": (1, None),
            },
        )


#: flags whose figure is worse when lower (the others are worse when higher)
LOWER_IS_WORSE = frozenset({"jet_lost", "hit_rate_dropped"})
#: rules over the whole run rather than a recent window, or costly: evaluated every
#: ``FlagThresholds.slow_every`` frames and at the end of the run
SLOW_RULES = frozenset({"sample_dying", "frames_dropped", "new_hot_pixels", "beam_centre_suspect"})


Rule = Callable[[RunAggregates, FlagThresholds], "Flag | None"]


def _recent(agg: RunAggregates, name: str, t: FlagThresholds) -> np.ndarray:
    return agg.recent(name, t.window) if name in agg.series else np.zeros(0)


def jet_lost(agg, t):
    js = agg.recent("jet_score", t.jet_window) if agg.series["jet_score"] else np.zeros(0)
    js = js[np.isfinite(js)]
    if len(js) >= min(t.min_frames, t.jet_window) and np.median(js) < t.jet_score_min:
        return Flag(
            "jet_lost",
            "error",
            f"Jet lost: the water ring is at {np.median(js):.0%} of its expected strength "
            f"over the last {len(js)} frames. Check the jet and the nozzle.",
            float(np.median(js)),
        )
    return None


def hit_rate_dropped(agg, t):
    hits = _recent(agg, "is_hit", t)
    if len(hits) < t.min_frames or agg.frames < 2 * t.window:
        return None
    run_rate = agg.hit_rate
    recent = float(np.mean(hits))
    if run_rate >= t.hit_rate_min_run and recent < t.hit_rate_drop * run_rate:
        return Flag(
            "hit_rate_dropped",
            "warning",
            f"Hit rate dropped to {recent:.1%} over the last {len(hits)} frames "
            f"(run: {run_rate:.1%}). Check sample delivery and crystal density.",
            recent,
        )
    return None


def _fraction_above(values: np.ndarray, minimum: float, needed: int) -> float | None:
    """Fraction of the finite ``values`` above ``minimum`` (None with fewer than ``needed``)."""
    values = values[np.isfinite(values)]
    if len(values) < needed:
        return None
    return float(np.mean(values > minimum))


def ice_rings(agg, t):
    frac = _fraction_above(_recent(agg, "ice_score", t), t.ice_score_min, t.min_frames)
    if frac is not None and frac > t.ice_fraction:
        return Flag(
            "ice_rings",
            "warning",
            f"Ice rings in {frac:.0%} of recent frames. Check cryo/humidity and the jet "
            "temperature; ice masks spots at 3.9-1.9 Å.",
            frac,
        )
    return None


def saturated(agg, t):
    sat = _recent(agg, "n_saturated", t)
    hit = _recent(agg, "is_hit", t).astype(bool)
    if len(sat) != len(hit) or hit.sum() < 5:
        return None
    med = float(np.median(sat[hit]))
    if med > t.saturated_pixels:
        return Flag(
            "saturated",
            "warning",
            f"Hits carry a median of {med:.0f} saturated pixels. Attenuate the beam.",
            med,
        )
    return None


def sample_dying(agg, t):
    inten = agg.recent("peak_intensity_mean")
    hit = agg.recent("is_hit").astype(bool)
    if len(inten) != len(hit):
        return None
    y = inten[hit]
    x = agg.recent("frame")[hit]
    ok = np.isfinite(y) & (y > 0)
    if ok.sum() < t.min_frames:
        return None
    slope, icpt = np.polyfit(x[ok], np.log(y[ok]), 1)
    span = x[ok].max() - x[ok].min()
    drop = 1.0 - float(np.exp(slope * span))
    if drop > t.dying_drop:
        return Flag(
            "sample_dying",
            "warning",
            f"Spot intensity fell by {drop:.0%} along the run: radiation damage or a "
            "dying sample. Move to fresh crystal or lower the dose.",
            drop,
        )
    return None


def frames_dropped(agg, t):
    fn = agg.recent("frame_number") if agg.series["frame_number"] else np.zeros(0)
    idx = agg.recent("frame")
    if len(fn) < 2 or len(fn) != len(idx):
        return None
    # stored frames are numbered 0, 1, 2...; the detector's counter skips where frames were lost
    order = np.argsort(idx, kind="stable")  # blocks may be stored out of order
    fn, idx = fn[order], idx[order]
    known = np.isfinite(fn)
    if known.sum() < 2:
        return None
    offset = (fn - idx)[known]
    # a restarted series (counter back to 0) starts over: count only increases of the offset
    steps = np.diff(offset)
    missing = int(steps[steps > 0].sum())
    ts = agg.recent("timestamp") if agg.series["timestamp"] else np.zeros(0)
    order = np.argsort(agg.recent("frame"))
    out_of_order = int(np.sum(np.diff(ts[order]) < 0)) if len(ts) == len(order) else 0
    if missing >= t.dropped_frames or out_of_order:
        parts = []
        if missing:
            parts.append(f"{missing} frames dropped by the detector or the network")
        if out_of_order:
            parts.append(f"{out_of_order} frames out of order")
        return Flag(
            "frames_dropped",
            "warning",
            "; ".join(parts).capitalize() + ". Check the detector stream and disk speed.",
            float(missing + out_of_order),
        )
    return None


def new_hot_pixels(agg, t):
    if agg.geometry is None:
        return None
    hot = agg.hot_pixels()
    if hot.size:
        hot = hot[~agg.geometry.maps.mask.ravel()[hot]]
    if hot.size >= t.hot_pixels:
        ny, nx = agg.geometry.shape
        where = ", ".join(f"({i % nx}, {i // nx})" for i in hot[:3].tolist())
        return Flag(
            "new_hot_pixels",
            "warning",
            f"{hot.size} hot pixels outside the detector mask (x, y: {where}"
            f"{', ...' if hot.size > 3 else ''}). Add them to the mask: they pass for spots.",
            float(hot.size),
        )
    return None


def beam_centre_suspect(agg, t):
    proj = agg.partials.get("projections")
    if agg.geometry is None or proj is None or proj.n_all < t.beam_min_frames:
        return None
    if len(agg.geometry.panels) != 1:
        return None  # multi-panel: ring centring is checked per panel elsewhere
    from .beamcheck import estimate_beam_offset

    dx, dy, quality = estimate_beam_offset(proj.mean_image(), agg.geometry, proj.factor)
    agg.beam_offset = (dx, dy, quality)
    if quality >= t.beam_quality_min and np.hypot(dx, dy) > t.beam_offset_px:
        return Flag(
            "beam_centre_suspect",
            "warning",
            f"Beam centre suspect: the rings are centred {dx:+.1f}, {dy:+.1f} pixels "
            "(x, y) from the geometry's beam centre. Check the geometry; resolution and "
            "radial profiles are off until it is fixed.",
            float(np.hypot(dx, dy)),
        )
    return None


from .flags_indexing import RULES as _INDEXING_RULES  # noqa: E402

RULES: dict[str, Rule] = {
    "jet_lost": jet_lost,
    "hit_rate_dropped": hit_rate_dropped,
    "ice_rings": ice_rings,
    "saturated": saturated,
    "sample_dying": sample_dying,
    "frames_dropped": frames_dropped,
    "new_hot_pixels": new_hot_pixels,
    "beam_centre_suspect": beam_centre_suspect,
    **_INDEXING_RULES,
}


def feature_flags(agg: RunAggregates) -> list[Flag]:
    """The flags declared on the analyzers' outputs that fire now."""
    out = []
    for spec in agg.declared.values():
        for ff in spec.flags:
            v = agg.recent(spec.name, ff.window)
            v = v[np.isfinite(v)]
            if len(v) < ff.min_frames:
                continue
            limit = ff.above if ff.above is not None else ff.below
            share = float(np.mean(v > limit if ff.above is not None else v < limit))
            if share >= ff.fraction:
                out.append(
                    Flag(
                        ff.name,
                        ff.severity,
                        ff.message.format(feature=spec.name, fraction=share, limit=limit),
                    )
                )
    return out


def evaluate(
    agg: RunAggregates,
    thresholds: FlagThresholds | None = None,
    rules: dict[str, Rule] | None = None,
    *,
    only: frozenset | None = None,
    skip: frozenset = frozenset(),
) -> list[Flag]:
    """All flags that fire now: the built-in rules (those named in ``only``, minus those in
    ``skip``), then, unless ``only`` is given, the analyzers' declared flags."""
    t = thresholds or FlagThresholds()
    out = []
    for name, rule in (rules or RULES).items():
        if (only is not None and name not in only) or name in skip:
            continue
        f = rule(agg, t)
        if f is not None:
            out.append(f)
    if rules is None and only is None:
        out.extend(f for f in feature_flags(agg) if f.name not in skip)
    return out


def status(flags: list[Flag]) -> str:
    """One word for the run: ``green``, ``amber`` (warnings) or ``red`` (an error)."""
    if any(f.severity == "error" for f in flags):
        return "red"
    return "amber" if flags else "green"
