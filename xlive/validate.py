"""Type and range checks for parameter dataclasses, run in their ``__post_init__``.

Every parameter a user can set (TOML tables, keyword arguments, the dashboard) passes through a
frozen dataclass; :func:`check_fields` checks each field against its annotation (and optional
ranges) and normalises what is safe to normalise (int -> float, list -> tuple), so kernels
compiled by numba never see a string or a NaN where they expect a number.

    @dataclass(frozen=True, kw_only=True)
    class SpotParams:
        min_snr: float = 5.0

        def __post_init__(self):
            check_fields(self, "analyzers.spots", ranges={"min_snr": (0, None)},
                         error=AnalyzerError)

Written here because the checks must match this project's annotations (``float | None``,
``tuple[float, float]``, nested parameter classes) and error classes; pydantic would do it but
would change every parameter class and their pickling to dask workers.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from typing import Any

from .errors import ConfigError

_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _name(tp: Any) -> str:
    """How a type reads in a message: ``a number``, ``an integer``, ``2 numbers``..."""
    if tp is float:
        return "a number"
    if tp is int:
        return "an integer"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        none = len(args) < len(typing.get_args(tp))
        return " or ".join(_name(a) for a in args) + (" (or omitted)" if none else "")
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(args[0])}"
        if len(set(args)) == 1:
            return f"a list of {len(args)} {_plural(args[0])}"
        return "a list of (" + ", ".join(_name(a) for a in args) + ")"
    if origin is dict or tp is dict:
        return "a table"
    if dataclasses.is_dataclass(tp):
        return f"a table of {tp.__name__} settings"
    return getattr(tp, "__name__", str(tp))


def _plural(tp: Any) -> str:
    return {float: "numbers", int: "integers", bool: "booleans", str: "strings"}.get(tp, _name(tp))


class _Mismatch(Exception):
    pass


def _convert(value: Any, tp: Any) -> Any:
    """``value`` as type ``tp`` (int -> float, list -> tuple) or raise _Mismatch."""
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _Mismatch
        value = float(value)
        if math.isnan(value):
            raise _Mismatch
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise _Mismatch
        return int(value)
    if tp is bool:
        if not isinstance(value, (bool, _np_bool())):
            raise _Mismatch
        return bool(value)
    if tp is str:
        if not isinstance(value, str):
            raise _Mismatch
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _Mismatch
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise _Mismatch
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0]) for v in value)
        if len(value) != len(args):
            raise _Mismatch
        return tuple(_convert(v, a) for v, a in zip(value, args, strict=True))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if isinstance(value, dict):  # a nested TOML table: the class checks its own fields
            allowed = {f.name for f in dataclasses.fields(tp) if f.init}
            unknown = sorted(set(value) - allowed)
            if unknown:
                raise _Mismatch(f"has unknown keys {unknown}; allowed: {sorted(allowed)}")
            return tp(**value)
        raise _Mismatch
    if isinstance(tp, type) and not isinstance(value, tp):
        raise _Mismatch
    return value


def _np_bool() -> type:
    import numpy as np

    return np.bool_


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def check_fields(
    obj: Any,
    where: str | None = None,
    *,
    ranges: dict[str, tuple[float | None, float | None]] | None = None,
    finite: bool = True,
    error: type[Exception] = ConfigError,
) -> None:
    """Check (and normalise in place) every field of the dataclass instance ``obj``.

    Parameters
    ----------
    obj
        A dataclass instance (frozen ones too: normalised values are set with
        ``object.__setattr__``).
    where
        Name of the settings in messages, e.g. ``"analyzers.spots"`` (default: class name).
    ranges
        Field name -> (low, high), inclusive; None leaves that side open. Applied to numbers and
        to each number of a tuple.
    finite
        Refuse infinite numbers (NaN is always refused).
    error
        Exception class raised (an :class:`~xlive.errors.XliveError` subclass).

    Raises
    ------
    error
        Naming the key, the expected type or range and the value given.
    """
    where = where or type(obj).__name__
    hints = _hints(type(obj))
    ranges = ranges or {}
    for f in dataclasses.fields(obj):
        if not f.init:
            continue
        tp = hints.get(f.name, Any)
        value = getattr(obj, f.name)
        try:
            new = _convert(value, tp)
        except _Mismatch as exc:
            if exc.args:
                raise error(f"[{where}] {f.name} {exc.args[0]}") from None
            raise error(f"[{where}] {f.name} must be {_name(tp)}, got {_show(value)}") from None
        numbers_in = new if isinstance(new, tuple) else (new,)
        for v in numbers_in:
            if isinstance(v, float) and finite and not math.isfinite(v):
                raise error(f"[{where}] {f.name} must be a finite number, got {_show(value)}")
        if f.name in ranges:
            lo, hi = ranges[f.name]
            for v in numbers_in:
                if (
                    isinstance(v, (int, float))
                    and not isinstance(v, bool)
                    and ((lo is not None and v < lo) or (hi is not None and v > hi))
                ):
                    raise error(
                        f"[{where}] {f.name} must be {_range_text(lo, hi)}, got {_show(value)}"
                    )
        if type(new) is not type(value) or new != value:
            object.__setattr__(obj, f.name, new)


def _range_text(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"between {lo:g} and {hi:g}"
    if lo is not None:
        return f">= {lo:g}"
    return f"<= {hi:g}"
