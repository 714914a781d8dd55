"""The analyzer contract: declare outputs (``describe``), give coordinates, compute per block.

An analyzer is built once per run from a :class:`~xlive.geometry.Geometry` and a frozen
parameter dataclass (its ``params_class``, filled from the ``[analyzers.NAME]`` table of the run
configuration); the constructor precomputes every per-pixel map it needs, and each call maps a
block of frames ``(n, y, x)`` to named arrays with leading dimension ``n``. Calls must be
thread-safe (no shared scratch buffers) and the object pickleable.

Each output is a :class:`FeatureSpec`. Its ``show`` (a :class:`Show`) says how the dashboard,
the notebook Monitor and the report draw it and how the run's aggregates add it up (strip chart,
histogram or image); its ``flags`` (:class:`FeatureFlag`) are rules over its recent values. The
feature store, the aggregates, the views and the report read these declarations, so a new
analyzer needs no other file edited (copy :mod:`xlive.analyzers._template`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ..conventions import FRAME
from ..errors import AnalyzerError
from ..geometry import Geometry

#: how a feature may be shown: per-frame value along the run, histogram over the run, image
SHOW_KINDS = ("strip", "histogram", "image")
#: how an image feature adds up over the frames
IMAGE_REDUCE = ("mean", "max", "sum")


@dataclass(frozen=True, kw_only=True)
class Show:
    """How a feature is shown and aggregated over the run.

    ``kind="strip"``: one value per frame, plotted against the frame index (hits in red) and
    kept in the run's recent series. ``kind="histogram"``: per-frame values counted into ``bins``
    bins over ``range`` for the whole run. ``kind="image"``: a 2-D feature per frame (dims
    ``(frame, a, b)``) added up over the run (``reduce``: mean, max or sum) and shown as an image.
    """

    kind: str
    #: plot title (default: the feature's description, or its name)
    title: str = ""
    #: histogram: value range and number of bins
    range: tuple[float, float] | None = None
    bins: int = 50
    #: image: how the frames add up
    reduce: str = "mean"
    #: strip: plot hits only (other frames leave a gap)
    hits_only: bool = False

    def __post_init__(self):
        if self.kind not in SHOW_KINDS:
            raise AnalyzerError(f"Show(kind={self.kind!r}): kind must be one of {SHOW_KINDS}")
        if self.kind == "histogram" and (
            self.range is None
            or len(self.range) != 2
            or not self.range[0] < self.range[1]
            or self.bins < 1
        ):
            raise AnalyzerError(
                "Show(kind='histogram') needs range=(low, high) with low < high "
                f"and bins >= 1; got range={self.range}, bins={self.bins}"
            )
        if self.reduce not in IMAGE_REDUCE:
            raise AnalyzerError(
                f"Show(reduce={self.reduce!r}): reduce must be one of {IMAGE_REDUCE}"
            )

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["range"] is not None:
            d["range"] = list(d["range"])
        return d


@dataclass(frozen=True, kw_only=True)
class FeatureFlag:
    """A flag over a per-frame scalar feature.

    Raised when at least ``fraction`` of the last ``window`` frames (at least ``min_frames``
    of them with a finite value) lie above ``above`` or below ``below``. ``message`` may use
    ``{feature}``, ``{fraction}`` (the share found) and ``{limit}``.
    """

    name: str
    message: str
    above: float | None = None
    below: float | None = None
    fraction: float = 0.5
    window: int = 100
    min_frames: int = 10
    #: "warning" or "error"
    severity: str = "warning"

    def __post_init__(self):
        if (self.above is None) == (self.below is None):
            raise AnalyzerError(f"FeatureFlag {self.name!r}: give exactly one of above= or below=")
        if self.severity not in ("warning", "error"):
            raise AnalyzerError(f"FeatureFlag {self.name!r}: severity is 'warning' or 'error'")
        if not 0 < self.fraction <= 1 or self.window < 1:
            raise AnalyzerError(f"FeatureFlag {self.name!r}: need 0 < fraction <= 1, window >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FeatureSpec:
    """One per-frame output: name, dims (first is ``frame``), dtype, units, fill value, and how
    it is shown (``show``) and flagged (``flags``)."""

    name: str
    dims: tuple[str, ...]
    dtype: str
    units: str = ""
    description: str = ""
    fill: float = math.nan
    #: sizes of the non-frame dims, e.g. ``{"q": 500}``
    sizes: dict = field(default_factory=dict)
    #: how the views and the report show it, and how the aggregates add it up (None: stored only)
    show: Show | None = None
    #: flags that read this feature (scalar features only)
    flags: tuple[FeatureFlag, ...] = ()

    def __post_init__(self):
        if not self.dims or self.dims[0] != FRAME:
            raise AnalyzerError(
                f"feature {self.name!r}: dims must start with {FRAME!r}, got {self.dims}"
            )
        missing = [d for d in self.dims[1:] if d not in self.sizes]
        if missing:
            raise AnalyzerError(f"feature {self.name!r}: give sizes for dims {missing}")
        kind = self.show.kind if self.show is not None else None
        if (kind in ("strip", "histogram") or self.flags) and len(self.dims) != 1:
            raise AnalyzerError(
                f"feature {self.name!r}: strip charts, histograms and flags need "
                f"one value per frame (dims ({FRAME!r},)), got {self.dims}"
            )
        if kind == "image" and len(self.dims) != 3:
            raise AnalyzerError(
                f"feature {self.name!r}: an image needs dims ({FRAME!r}, a, b), got {self.dims}"
            )

    @property
    def title(self) -> str:
        """Plot title: the show title, the description, or the name."""
        return (self.show.title if self.show is not None else "") or self.description or self.name

    def to_dict(self) -> dict:
        """JSON-able description (stored with the features; :meth:`from_dict` reads it back)."""
        return {
            "name": self.name,
            "dims": list(self.dims),
            "dtype": self.dtype,
            "units": self.units,
            "description": self.description,
            "fill": None if math.isnan(self.fill) else self.fill,
            "sizes": {k: int(v) for k, v in self.sizes.items()},
            "show": None if self.show is None else self.show.to_dict(),
            "flags": [f.to_dict() for f in self.flags],
        }

    @classmethod
    def from_dict(cls, d: dict) -> FeatureSpec:
        show = d.get("show")
        if show is not None:
            show = Show(**{**show, "range": tuple(show["range"]) if show.get("range") else None})
        fill = d.get("fill")
        return cls(
            d["name"],
            tuple(d["dims"]),
            d["dtype"],
            d.get("units", ""),
            d.get("description", ""),
            math.nan if fill is None else fill,
            dict(d.get("sizes", {})),
            show,
            tuple(FeatureFlag(**f) for f in d.get("flags", ())),
        )

    def shape(self, n_frames: int) -> tuple[int, ...]:
        """Array shape for ``n_frames`` frames."""
        return (n_frames, *(self.sizes[d] for d in self.dims[1:]))

    def empty(self, n_frames: int) -> np.ndarray:
        """An array of this feature for ``n_frames`` frames, filled with ``fill``."""
        return np.full(self.shape(n_frames), self.fill, dtype=self.dtype)


@runtime_checkable
class Analyzer(Protocol):
    """What every analyzer provides (see :mod:`xlive.analyzers._template`)."""

    name: str
    #: frozen dataclass of its parameters (the ``[analyzers.NAME]`` table), or None
    params_class: type | None

    def describe(self) -> list[FeatureSpec]:
        """The outputs, before anything is computed."""
        ...

    def coords(self) -> dict[str, tuple[str, np.ndarray, dict]]:
        """Coordinates of the non-frame dims: ``{name: (dim, values, attrs)}``."""
        ...

    def __call__(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """Features of a block of frames ``(n, y, x)``; arrays with leading dimension ``n``."""
        ...


def as_block(frames: np.ndarray, shape: tuple[int, int], name: str) -> np.ndarray:
    """``frames`` as a 3-D ``(n, y, x)`` array (a single 2-D frame becomes ``n = 1``)."""
    a = np.asarray(frames)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[1:] != tuple(shape):
        raise AnalyzerError(
            f"{name}: expected frames of shape (n, {shape[0]}, {shape[1]}) matching the geometry, "
            f"got {a.shape}; check that the geometry belongs to this detector"
        )
    return a


def valid_range(dtype: np.dtype, geometry: Geometry | None = None) -> tuple[float, float]:
    """Pixel values treated as measurements: ``[lo, hi]``; others (gap markers, NaN) are skipped.

    The geometry's declared sentinels decide (:meth:`xlive.geometry.Geometry.valid_range`);
    without a geometry, the undeclared rule: unsigned integers reserve their maximum value
    (``2**32 - 1`` on EIGER), signed integers and floats are all measurements (finite values).
    """
    if geometry is not None:
        return geometry.valid_range(dtype)
    dt = np.dtype(dtype)
    if dt.kind == "u":
        return 0.0, float(np.iinfo(dt).max) - 1.0
    if dt.kind == "b":
        return 0.0, 1.0
    return -math.inf, math.inf


def in_photons(frames: np.ndarray, geometry: Geometry) -> np.ndarray:
    """``frames`` in photons for Poisson-based rules: untouched when the gain is 1 everywhere,
    else float32 divided by the gain map, invalid values as NaN."""
    if geometry.gain == 1.0:
        return frames
    lo, hi = geometry.valid_range(frames.dtype)
    f = np.asarray(frames, np.float32)
    with np.errstate(invalid="ignore"):
        f = np.where((f >= lo) & (f <= hi), f, np.float32(np.nan))
    return f / geometry.gain_map()


def photon_frames(frames: np.ndarray, geometry: Geometry) -> tuple[np.ndarray, float]:
    """``(frames, gain)`` ready for the kernels, which take one gain (ADU per photon).

    With one gain for the whole detector the frames are returned untouched. Panels of
    different gains are converted to photons first (float32, invalid values become NaN), and
    the gain is then 1.
    """
    gain = geometry.gain
    if gain is not None:
        return frames, float(gain)
    lo, hi = geometry.valid_range(frames.dtype)
    f = frames.astype(np.float32)
    with np.errstate(invalid="ignore"):
        f[~((f >= lo) & (f <= hi))] = np.nan
    f /= geometry.gain_map()
    return f, 1.0
