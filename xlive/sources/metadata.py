"""Per-frame metadata side tables (CSV or HDF5), joined to frames by frame index.

A side table has one row per frame and a ``frame`` column (0-based frame index); without one,
row ``i`` describes frame ``i``. Tables may grow while a run is written: a last CSV line
without its newline is a row still being written and is ignored until it is complete.

Frames the table does not cover (yet) get NaN (float columns), -1 (integer columns) or False
(boolean columns).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from ..errors import SourceError

if TYPE_CHECKING:
    import pandas as pd

FRAME_COLUMN = "frame"


def read_side_table(path: str | Path, *, frame_column: str = FRAME_COLUMN) -> pd.DataFrame:
    """Read a per-frame side table into a DataFrame indexed by frame.

    Parameters
    ----------
    path
        A ``.csv`` file or an HDF5 file (``.h5``/``.hdf5``/``.nxs``) whose root (or ``/metadata``
        group) holds 1-D datasets of equal length, one per column.
    frame_column
        Column with the 0-based frame index (optional; row order is used when absent).

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "m.csv")
    >>> _ = open(p, "w").write("frame,laser_on\\n0,1\\n1,0\\n")
    >>> read_side_table(p)["laser_on"].tolist()
    [True, False]
    """
    path = Path(path)
    if not path.exists():
        return _empty()
    if path.suffix.lower() == ".csv":
        table = _read_csv(path)
    elif path.suffix.lower() in (".h5", ".hdf5", ".nxs"):
        table = _read_h5(path)
    else:
        raise SourceError(f"side table {path} must be .csv or .h5/.hdf5 (one column per field)")
    if frame_column in table.columns:
        table = table.set_index(frame_column)
    table.index = table.index.astype(np.int64)
    table.index.name = FRAME_COLUMN
    for col in table.columns:  # 0/1 laser flags written as integers
        if col == "laser_on" and table[col].dtype.kind in "iuf":
            table[col] = table[col].fillna(0).astype(bool)
    return table[~table.index.duplicated(keep="last")].sort_index()


def _empty() -> pd.DataFrame:
    import pandas as pd  # only for runs with a side table (serve starts without pandas)

    return pd.DataFrame(index=pd.Index([], dtype=np.int64, name=FRAME_COLUMN))


def _read_csv(path: Path) -> pd.DataFrame:
    import pandas as pd  # only for runs with a side table (serve starts without pandas)

    text = path.read_bytes().decode("utf-8", errors="replace")
    if not text.strip():
        return _empty()
    if not text.endswith("\n"):  # last row still being written
        text = text[: text.rfind("\n") + 1]
    try:
        return pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SourceError(f"side table {path} is not a readable CSV file: {exc}") from exc


def _read_h5(path: Path) -> pd.DataFrame:
    import pandas as pd  # only for runs with a side table (serve starts without pandas)

    try:
        with h5py.File(path, "r") as f:
            group = f["metadata"] if "metadata" in f else f
            cols = {
                k: v[()] for k, v in group.items() if isinstance(v, h5py.Dataset) and v.ndim == 1
            }
    except OSError as exc:
        raise SourceError(f"side table {path} cannot be opened as HDF5: {exc}") from exc
    if not cols:
        return _empty()
    n = min(len(v) for v in cols.values())
    return pd.DataFrame({k: v[:n] for k, v in cols.items()})


def side_table_columns(table: pd.DataFrame, n: int) -> dict[str, np.ndarray]:
    """Columns of ``table`` aligned to frames ``0..n-1`` (missing rows filled, see module doc)."""
    out: dict[str, np.ndarray] = {}
    present = table.index[(table.index >= 0) & (table.index < n)]
    for col in table.columns:
        values = table.loc[present, col].to_numpy()
        kind = values.dtype.kind
        if kind == "b":
            arr = np.zeros(n, bool)
        elif kind in "iu":
            arr = np.full(n, -1, np.int64)
        elif kind == "f":
            arr = np.full(n, np.nan, values.dtype)
        else:
            continue  # text columns are not coordinates
        arr[present.to_numpy()] = values
        out[str(col)] = arr
    return out


#: side-table names looked for beside a run's data when none is given ({stem}: the run's
#: file name without ``_master``/suffix)
SIDE_TABLE_NAMES = ("{stem}_metadata.csv", "{stem}.csv", "metadata.csv", "metadata.h5")


def find_side_table(data: str | Path) -> Path | None:
    """A per-frame side table beside ``data`` (an Eiger master, a folder of images), if any:
    ``<stem>_metadata.csv``, ``<stem>.csv``, ``metadata.csv`` or ``metadata.h5``."""
    data = Path(data)
    folder = data if data.is_dir() else data.parent
    stem = data.name.split(".")[0].removesuffix("_master")
    for pattern in SIDE_TABLE_NAMES:
        candidate = folder / pattern.format(stem=stem)
        if candidate.is_file() and candidate != data:
            return candidate
    return None
