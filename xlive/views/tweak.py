"""Live controls on the run: spot-finder parameters (preview on one frame, then apply), sampling
and flag thresholds. Used by the notebook monitor and the server page alike.

Like OM's parameter tweaker, a change of spot-finder parameters is tried at once on the frame on
display; :meth:`LiveControls.apply_spot_params` then makes the live run use them for the frames
it has not computed yet.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

#: spot-finder parameters the controls expose (they never change the shape of the features)
SPOT_FIELDS = ("adc_threshold", "pixel_snr", "min_snr", "min_spots_hit")
#: flag thresholds the controls expose
FLAG_FIELDS = (
    "jet_score_min",
    "ice_fraction",
    "hit_rate_drop",
    "dying_drop",
    "multi_lattice_fraction",
)


def sampling_note(session) -> str:
    """``"every frame analysed"``, or e.g. ``"1 in 4 frames analysed (25%): 1 in 2 as you
    set, and 1 in 2 of those as the analysis is behind"``."""
    from ..engine.backlog import fixed_step

    proc = session.processor
    asked = fixed_step(proc.params.sample)
    behind = max(1, int(proc.stats.sample_step))
    step = asked * behind
    if step == 1:
        return "every frame analysed"
    why = []
    if asked > 1:
        why.append(f"1 in {asked} as you set")
    if behind > 1:
        those = " of those" if asked > 1 else ""
        why.append(f"1 in {behind}{those} as the analysis is behind")
    return f"1 in {step} frames analysed ({1 / step:.0%}): {', and '.join(why)}"


@dataclass(frozen=True)
class Preview:
    """Spots found in one frame with trial parameters."""

    frame: int
    x: np.ndarray
    y: np.ndarray
    n_spots: int
    is_hit: bool


def _spot_finder_class():
    from ..analyzers import SpotFinder

    return SpotFinder


class LiveControls:
    """Change how a :class:`~xlive.engine.session.LiveSession` analyses and judges its run, live."""

    def __init__(self, session):
        self.session = session
        self._finders: dict = {}

    # ------------------------------------------------------------------ spot finder
    @property
    def spot_finder(self):
        """The spot finder the live run uses now (None if the analyzers have none, or are not
        built yet: the run had no frame when the session started)."""
        cls = _spot_finder_class()
        for a in self.session.processor.analyzers or ():
            if isinstance(a, cls):
                return a
            if isinstance(getattr(a, "spots", None), cls):  # the fused FrameAnalyzer
                return a.spots
        return None

    @property
    def spot_params(self):
        sf = self.spot_finder
        return None if sf is None else sf.params

    def _finder(self, params):
        if self.spot_finder is not None and params == self.spot_finder.params:
            return self.spot_finder
        if params not in self._finders:
            self._finders.clear()  # keep one trial finder (their setup holds geometry maps)
            self._finders[params] = _spot_finder_class()(self.session.source.geometry, params)
        return self._finders[params]

    def trial_params(self, **changes):
        """The live spot parameters with ``changes`` (keyword names from :data:`SPOT_FIELDS`)."""
        return dataclasses.replace(self.spot_params, **changes)

    def preview(self, frame: int, params=None) -> Preview:
        """Find spots in ``frame`` with ``params`` (default: the live ones), now."""
        sf = self._finder(params or self.spot_params)
        img = self.session.read_frame(int(frame))
        out = sf(np.asarray(img)[None])
        x, y = np.asarray(out["peak_x"][0]), np.asarray(out["peak_y"][0])
        ok = np.isfinite(x)
        return Preview(int(frame), x[ok], y[ok], int(out["n_spots"][0]), bool(out["is_hit"][0]))

    def _with_spot_params(self, analyzer, params):
        cls = _spot_finder_class()
        geom = self.session.source.geometry
        if isinstance(analyzer, cls):
            return self._finder(params)
        if isinstance(getattr(analyzer, "spots", None), cls):  # fused: rebuild with new spots
            return type(analyzer)(
                geom, radial=analyzer.radial.params, spots=params, stats=analyzer.stats.params
            )
        return analyzer

    def apply_spot_params(self, params) -> None:
        """Make the live run use ``params`` for every frame it computes from now on."""
        proc = self.session.processor
        new = [self._with_spot_params(a, params) for a in proc.analyzers]
        with self.session.lock:
            proc.set_analyzers(new)
            self.session.analyzer_params = {**self.session.analyzer_params, "spots": params}

    # ------------------------------------------------------------------ sampling
    @property
    def sample(self) -> float:
        """Fraction of frames the live run computes (1: all)."""
        s = self.session.processor.params.sample
        return 1.0 if s is None else float(s)

    def set_sample(self, fraction: float) -> None:
        """Compute ``fraction`` of the new frames (1: all; sampling when behind stays on)."""
        fraction = float(fraction)
        proc = self.session.processor
        proc.params = dataclasses.replace(
            proc.params, sample=None if fraction >= 1 else max(fraction, 1e-3)
        )

    def sampling_note(self) -> str:
        """What fraction of the frames the live run analyses now, and why (the lag chart's
        title and the sampling slider say the same)."""
        return sampling_note(self.session)

    # ------------------------------------------------------------------ flags
    def set_thresholds(self, **changes) -> list:
        """Change flag thresholds and re-evaluate the flags now."""
        with self.session.lock:
            self.session.thresholds = dataclasses.replace(self.session.thresholds, **changes)
            return self.session.update_flags()
