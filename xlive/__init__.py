"""xlive: live analysis of serial crystallography runs.

Public API: ``open_source``, ``analyze``, ``open_features``, ``LiveSession``, ``Monitor``,
``simulate`` (module), ``Geometry``.
"""

from __future__ import annotations

import importlib

from .errors import XliveError
from .geometry import Geometry, Panel

__version__ = "0.1.0"

_LAZY = {
    "open_source": ("xlive.sources", "open_source"),
    "analyze": ("xlive.features", "analyze"),
    "open_features": ("xlive.store", "open_features"),
    "LiveSession": ("xlive.session", "LiveSession"),
    "LiveProcessor": ("xlive.live", "LiveProcessor"),
    "Monitor": ("xlive.views.monitor", "Monitor"),
    "simulate": ("xlive.simulate", None),
}

__all__ = ["Geometry", "Panel", "XliveError", "__version__", *_LAZY]


def __getattr__(name: str):
    # heavy modules (dask, bokeh, numba) load on first use, so `import xlive` stays quick
    if name in _LAZY:
        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        return mod if attr is None else getattr(mod, attr)
    raise AttributeError(f"module 'xlive' has no attribute {name!r}")
