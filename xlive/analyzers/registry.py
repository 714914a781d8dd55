"""Built-in analyzers by name, plus third-party ones from the ``xlive.analyzers`` entry points.

Like xarray's backend plugins: built-ins live in a dict; an installed package adds its own with
``[project.entry-points."xlive.analyzers"] name = "pkg.module:Class"``. A plugin that fails to
load gives a warning naming it and the error, never a crash.
"""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points

from ..errors import AnalyzerError
from .combined import FrameAnalyzer
from .radial import RadialParams, RadialProfile
from .spots import SpotFinder, SpotParams
from .stats import FrameStats, StatsParams

ENTRY_POINT_GROUP = "xlive.analyzers"

#: name -> (analyzer class, its parameter class; None: keyword parameters radial/spots/stats)
BUILTINS: dict[str, tuple[type, type | None]] = {
    FrameAnalyzer.name: (FrameAnalyzer, None),
    RadialProfile.name: (RadialProfile, RadialParams),
    SpotFinder.name: (SpotFinder, SpotParams),
    FrameStats.name: (FrameStats, StatsParams),
}


class PluginWarning(UserWarning):
    """A third-party analyzer could not be loaded."""


def plugin_analyzers() -> dict[str, type]:
    """Analyzer classes registered by installed packages (broken ones warn and are skipped)."""
    found = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            found[ep.name] = ep.load()
        except Exception as e:  # any failure of third-party code must not stop a run
            warnings.warn(f"xlive analyzer plugin {ep.name!r} ({ep.value}) failed to load: "
                          f"{type(e).__name__}: {e}; it is skipped", PluginWarning, stacklevel=2)
    return found


def available_analyzers() -> dict[str, type]:
    """All analyzer classes by name: built-ins, then plugins (a plugin cannot shadow a built-in)."""
    out = {name: cls for name, (cls, _) in BUILTINS.items()}
    for name, cls in plugin_analyzers().items():
        out.setdefault(name, cls)
    return out


def get_analyzer(name: str) -> type:
    """The analyzer class registered as ``name``."""
    avail = available_analyzers()
    try:
        return avail[name]
    except KeyError:
        raise AnalyzerError(
            f"unknown analyzer {name!r}; available: {', '.join(sorted(avail))}. Third-party "
            f"analyzers register under the entry-point group {ENTRY_POINT_GROUP!r}"
        ) from None
