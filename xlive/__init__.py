"""xlive: live analysis of serial crystallography runs.

Public API: ``open_source``, ``analyze``, ``open_features``, ``LiveSession``, ``Monitor``,
``simulate`` (module), ``Geometry``, ``export_hits``, ``write_report``, ``record_run``.
"""

from __future__ import annotations

import importlib

from .errors import XliveError
from .geometry import Geometry, Panel

__version__ = "0.1.0"

_LAZY = {
    "open_source": ("xlive.sources", "open_source"),
    "analyze": ("xlive.engine.features", "analyze"),
    "open_features": ("xlive.engine.store", "open_features"),
    "LiveSession": ("xlive.engine.session", "LiveSession"),
    "LiveProcessor": ("xlive.engine.live", "LiveProcessor"),
    "Monitor": ("xlive.views.monitor", "Monitor"),
    "simulate": ("xlive.simulate", None),
    "export_hits": ("xlive.outputs.hits", "export_hits"),
    "write_report": ("xlive.outputs.report", "write_report"),
    "record_run": ("xlive.outputs.rundb", "record_run"),
    "RunDB": ("xlive.outputs.rundb", "RunDB"),
    "load_config": ("xlive.config", "load_config"),
    "default_analyzers": ("xlive.analyzers", "default_analyzers"),
    "analyze_frames": ("xlive.analyzers", "analyze_frames"),
    "run_variable": ("xlive.outputs.variables", "run_variable"),
    "Logbook": ("xlive.views.logbook_widget", "LogbookWidget"),
}

__all__ = ["Geometry", "Panel", "XliveError", "__version__", *_LAZY]


def __getattr__(name: str):
    # heavy modules (dask, bokeh, numba) load on first use, so `import xlive` stays quick
    if name in _LAZY:
        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        if name in ("analyze", "open_features"):  # Dataset.xlive, also on xarray.open_zarr
            importlib.import_module("xlive.engine.accessor")
        return mod if attr is None else getattr(mod, attr)
    raise AttributeError(f"module 'xlive' has no attribute {name!r}")
