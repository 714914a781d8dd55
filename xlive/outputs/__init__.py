"""Hand results on: CrystFEL hits files, feature tables, the run database, an HTML report.

- :func:`export_hits` / :class:`CXIHitsWriter` / :class:`CXIHitsListener`: hits-only CXI files
  for ``indexamajig --peaks=cxi``, ``.lst`` event lists and a ``.geom`` (:func:`write_hits_geom`).
- :func:`frame_table`, :func:`peak_table`, :func:`write_table`: Parquet / CSV tables.
- :func:`summarize`, :class:`RunDB`, :func:`record_run`: run figures in a SQL database.
- :func:`write_report`: a self-contained HTML report.

Heavy dependencies (bokeh, SQLAlchemy, pyarrow) load when first used.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "CXIHitsWriter": "cxi",
    "CXIHitsListener": "cxi",
    "read_cxi_peaks": "cxi",
    "export_hits": "hits",
    "write_hits_geom": "hits",
    "original_events": "hits",
    "frame_table": "tables",
    "peak_table": "tables",
    "write_table": "tables",
    "RunSummary": "summary",
    "summarize": "summary",
    "RunDB": "rundb",
    "record_run": "rundb",
    "default_db": "rundb",
    "write_report": "report",
    "build_report": "report",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
