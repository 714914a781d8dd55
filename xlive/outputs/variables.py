"""Run variables: logbook columns users add as decorated Python functions.

A variables file is a plain Python file::

    import xlive

    @xlive.run_variable(title="Hit rate at d < 2.5 Å", cheap=True)
    def hit_rate_hires(ds):
        hits = ds.is_hit & (ds.d_min < 2.5)
        return float(hits.mean())

    @xlive.run_variable(title="Mean pulse energy (µJ)")
    def pulse_energy(ds, metadata):
        return float(metadata.pulse_energy.mean())

Each function takes the run's feature Dataset (lazy: only the features it touches are read)
and, if it has a second parameter, the run's per-frame metadata (an ``xarray.Dataset`` indexed
by frame with every column the source knows, run facts in ``.attrs``). It returns a number, a
string or a small array. Its column is keyed by the function's name. Variables run when a run
finishes; those declared ``cheap`` also run live while the run grows. A variable that raises
gives an error in its cell; the others are computed as usual.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError

#: largest array a variable may return (elements); bigger results are errors in the cell
MAX_ELEMENTS = 1000

#: names of the logbook's own columns; a variable may not take one of them
RESERVED = frozenset(
    {
        "id",
        "run",
        "source",
        "features",
        "start",
        "started",
        "ended",
        "frames",
        "seen",
        "analysed",
        "hits",
        "hit_rate",
        "indexing_rate",
        "d_min",
        "cell",
        "flags",
        "lag",
        "state",
        "trend",
        "comment",
        "tags",
        "errors",
        "status",
        "link",
        "updated",
    }
)


@dataclass(frozen=True)
class RunVariable:
    """One user column: a function of the run's features (and metadata)."""

    name: str
    func: Callable
    title: str
    cheap: bool = False

    @property
    def wants_metadata(self) -> bool:
        params = [
            p
            for p in inspect.signature(self.func).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        return len(params) >= 2

    def __call__(self, ds, metadata=None):
        return self.func(ds, metadata) if self.wants_metadata else self.func(ds)


def run_variable(func: Callable | None = None, *, title: str | None = None, cheap: bool = False):
    """Mark a function as a logbook column (``@xlive.run_variable(title=..., cheap=...)``).

    Parameters
    ----------
    title
        Column heading (default: the function's name).
    cheap
        Also compute it live, while the run grows (keep it quick: it runs every few seconds).
    """

    def mark(f: Callable) -> Callable:
        f.__xlive_variable__ = RunVariable(f.__name__, f, title or f.__name__, bool(cheap))
        return f

    return mark(func) if func is not None else mark


@dataclass(frozen=True)
class VariableSet:
    """The variables of one file, with the hash of the file's text."""

    path: str
    digest: str
    variables: tuple[RunVariable, ...]

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variables]

    @property
    def titles(self) -> dict[str, str]:
        return {v.name: v.title for v in self.variables}

    def cheap(self) -> VariableSet:
        return VariableSet(self.path, self.digest, tuple(v for v in self.variables if v.cheap))


def file_digest(path: str | Path) -> str:
    """SHA-256 of a variables file's bytes (a change re-computes the variables of past runs)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_variables(path: str | Path) -> VariableSet:
    """Execute a variables file and collect its ``@run_variable`` functions."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"variables file {path} does not exist; give a Python file of "
            "@xlive.run_variable functions"
        )
    text = path.read_text()
    namespace: dict = {"__name__": f"xlive_variables_{path.stem}", "__file__": str(path)}
    try:
        code = compile(text, str(path), "exec")
        exec(code, namespace)  # a user's own file, given on the command line
    except Exception as exc:
        tb = traceback.extract_tb(exc.__traceback__)
        line = exc.lineno if isinstance(exc, SyntaxError) else (tb[-1].lineno if tb else "?")
        raise ConfigError(
            f"variables file {path} failed to load (line {line}): {type(exc).__name__}: {exc}"
        ) from exc
    found = [
        v.__xlive_variable__
        for v in namespace.values()
        if callable(v) and hasattr(v, "__xlive_variable__")
    ]
    clash = sorted(v.name for v in found if v.name in RESERVED)
    if clash:
        raise ConfigError(
            f"variables {clash} in {path} have the names of built-in logbook "
            "columns; rename the functions"
        )
    if not found:
        raise ConfigError(f"variables file {path} defines no @xlive.run_variable function")
    return VariableSet(
        str(path.absolute()), hashlib.sha256(text.encode()).hexdigest(), tuple(found)
    )


def to_cell(value):
    """A variable's result as a JSON-ready value (number, string, bool, list or None).

    Raises
    ------
    TypeError
        For results a cell cannot hold (objects, arrays over :data:`MAX_ELEMENTS` elements).
    """
    if hasattr(value, "compute") and callable(value.compute):  # dask or lazy xarray
        value = value.compute()
    if hasattr(value, "values") and not isinstance(value, (dict, np.ndarray)):  # xarray
        value = value.values
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (list, tuple)):
        value = np.asarray(value)
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return to_cell(value.item())
        if value.size > MAX_ELEMENTS:
            raise TypeError(
                f"returned an array of {value.size} elements; a cell holds at most {MAX_ELEMENTS}"
            )
        if value.dtype.kind not in "biufU":
            raise TypeError(f"returned an array of {value.dtype}; return numbers or strings")
        return [to_cell(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # JSON (and PostgreSQL) has no NaN
    raise TypeError(
        f"returned a {type(value).__name__}; return a number, a string or a small array"
    )


def evaluate(variables: VariableSet, ds, metadata=None) -> dict[str, tuple[object, str | None]]:
    """Compute every variable: ``{name: (value, None)}`` or ``{name: (None, error)}``.

    ``metadata`` may be a callable returning the metadata Dataset: it is only called when a
    variable asks for metadata.
    """
    out: dict[str, tuple[object, str | None]] = {}
    meta_box: list = []
    for var in variables.variables:
        try:
            meta = None
            if var.wants_metadata:
                if not meta_box:
                    meta_box.append(metadata() if callable(metadata) else metadata)
                meta = meta_box[0]
            out[var.name] = (to_cell(var(ds, meta)), None)
        except Exception as exc:  # the cell shows it; the other variables go on
            out[var.name] = (None, f"{type(exc).__name__}: {exc}"[:500])
    return out
