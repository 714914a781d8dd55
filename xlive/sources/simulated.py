"""An xlive run folder (``xlive-run.json`` + data + ``metadata.csv``), as ``xlive simulate`` writes.

Opens the data named in ``xlive-run.json`` with the matching source, uses the run's geometry
(mask from the data's own pixel mask) and joins the ``metadata.csv`` side table by frame.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import SourceError
from ..geometry.core import Geometry
from ..registry import open_source
from .base import Source

RUN_FILE = "xlive-run.json"


def is_run_folder(path: str | Path) -> bool:
    return (Path(path) / RUN_FILE).is_file()


def open_run_folder(path: str | Path, **options) -> Source:
    """Open the data of an xlive run folder; returns the data's own source (Zarr/Eiger/files)."""
    path = Path(path)
    try:
        info = json.loads((path / RUN_FILE).read_text())
        data = path / info["data"]
    except (OSError, ValueError, KeyError) as exc:
        raise SourceError(
            f"{path / RUN_FILE} is not a readable xlive run description: {exc}"
        ) from exc
    if info.get("metadata") and "metadata" not in options:
        options["metadata"] = path / info["metadata"]
    source = open_source(str(data), **options)
    if "geometry" not in options and "geometry" in info:
        try:
            header = source.header_geometry()
        except Exception:
            header = None
        mask = header.mask if header is not None and header.mask is not None else None
        source.override_geometry(Geometry.from_dict(info["geometry"], mask=mask))
    source.run_info = info
    run_file = path / RUN_FILE

    def complete() -> bool:  # the writer rewrites the description with complete=True at the end
        try:
            return bool(json.loads(run_file.read_text()).get("complete"))
        except (OSError, ValueError):
            return False

    source.end_marker = complete
    return source


class RunFolder:
    """The registry's ``run`` source: opens a run folder as its data's own source."""

    guess_can_open = staticmethod(is_run_folder)

    def __new__(cls, target: str | Path, **options) -> Source:  # an opener, not an instance
        return open_run_folder(target, **options)
