"""Feature tables: one row per frame or one row per peak, as pandas, Parquet or CSV.

Per-frame tables hold every scalar feature of the computed frames plus their metadata
(``timestamp``, ``laser_on``, ``pulse_energy``, ``frame_number``) and ``status``; radial
profiles (one value per q bin) stay in the Zarr feature store. Per-peak tables hold one row per
found spot (``frame``, ``peak``, ``peak_x``, ``peak_y``, ``peak_intensity``...). Parquet files
carry the units and the run in their schema metadata (key ``xlive``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..conventions import FRAME, PEAK
from ..errors import ConfigError
from ._common import META, features_dataset, require

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".gz": "csv"}


def frame_table(features: str | Path | xr.Dataset) -> pd.DataFrame:
    """One row per computed frame: ``frame``, metadata, ``status`` and every scalar feature.

    Examples
    --------
    >>> frame_table("features.zarr")[["frame", "n_spots", "is_hit"]]  # doctest: +SKIP
    """
    ds = features_dataset(features)
    cols: dict[str, np.ndarray] = {"frame": ds[FRAME].values}
    for k in (*META, "status"):
        if k in ds.coords:
            cols[k] = ds[k].values
    for k, v in ds.data_vars.items():
        if v.dims == (FRAME,):
            cols[k] = v.values
    return pd.DataFrame(cols)


def peak_table(features: str | Path | xr.Dataset) -> pd.DataFrame:
    """One row per found peak: ``frame``, ``peak`` (rank in the frame) and the ``peak_*``
    features, plus the frame's metadata and ``is_hit``."""
    ds = features_dataset(features)
    require(ds, "peak_x", "peak_y", what="a peak table")
    names = [k for k, v in ds.data_vars.items() if v.dims == (FRAME, PEAK)]
    px = ds["peak_x"].values
    fi, pk = np.nonzero(np.isfinite(px))
    cols: dict[str, np.ndarray] = {"frame": ds[FRAME].values[fi], "peak": pk.astype(np.int32)}
    for k in names:
        cols[k] = ds[k].values[fi, pk]
    for k in (*META, "is_hit"):
        if k in ds.variables and ds[k].dims == (FRAME,):
            cols[k] = ds[k].values[fi]
    return pd.DataFrame(cols)


def _format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in ("parquet", "csv"):
            raise ConfigError(f"table format must be 'parquet' or 'csv', got {fmt!r}")
        return fmt
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise ConfigError(
            f"cannot tell the table format from {path.name!r}; name it .parquet "
            "or .csv (or .csv.gz), or pass fmt='parquet'|'csv'"
        )
    return found


def write_table(
    features: str | Path | xr.Dataset,
    out: str | Path,
    *,
    peaks: bool = False,
    fmt: str | None = None,
) -> pd.DataFrame:
    """Write the per-frame (or, with ``peaks``, per-peak) table to Parquet or CSV.

    The format follows the suffix (``.parquet``/``.pq``, ``.csv``/``.csv.gz``) unless ``fmt``
    says. Returns the table written.
    """
    out = Path(out)
    kind = _format(out, fmt)
    ds = features_dataset(features)
    table = peak_table(ds) if peaks else frame_table(ds)
    if kind == "csv":
        table.to_csv(out, index=False)
        return table
    import pyarrow as pa
    import pyarrow.parquet as pq

    units = {
        k: ds[k].attrs.get("units", "")
        for k in table.columns
        if k in ds.variables and ds[k].attrs.get("units")
    }
    info = {"source": ds.attrs.get("source"), "units": units, "rows": "peak" if peaks else "frame"}
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    meta = dict(arrow.schema.metadata or {})
    meta[b"xlive"] = json.dumps(info).encode()
    pq.write_table(arrow.replace_schema_metadata(meta), out)
    return table


def read_table_info(path: str | Path) -> dict:
    """The ``xlive`` schema metadata of a Parquet table (units, source, row kind)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta.get(b"xlive", b"{}"))
