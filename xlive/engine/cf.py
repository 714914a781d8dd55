"""CF-style attributes of the feature datasets, and the datetime64 encoding of ``timestamp``.

Every variable and coordinate of :func:`xlive.analyze` and :func:`xlive.open_features` carries
``long_name`` and, unless it is dimensionless, ``units`` (a dimensionless quantity has no
``units`` attribute at all, never ``units=""``, so xarray labels an axis "spots found" rather
than "spots found []"). Features take theirs from their :class:`~xlive.analyzers.base.FeatureSpec`
(``units`` "" or "1": dimensionless by declaration); the per-frame metadata and ``status`` take
theirs from :data:`COORD_ATTRS` below (an entry without ``units`` declares it dimensionless).

``timestamp`` is ``datetime64[ns]`` (UTC) in every Dataset. Sources report it as float seconds
since the Unix epoch; :func:`to_datetime64` converts. In the Zarr feature store it is kept the
way xarray itself writes times (int64 nanoseconds with CF ``units``/``calendar``; ``NaT`` as the
int64 minimum), so ``xarray.open_zarr`` decodes it to the same ``datetime64[ns]``.
"""

from __future__ import annotations

import json

import numpy as np

from ..conventions import (
    FRAME,
    FRAME_NUMBER,
    LASER_ON,
    PULSE_ENERGY,
    PULSE_ID,
    TIMESTAMP,
    TRAIN_ID,
)

#: frame status values (the ``status`` coordinate)
PENDING, DONE, BAD, SKIPPED = 0, 1, 2, 3
STATUS = "status"

#: attributes of the coordinates xlive itself makes; no ``units``: dimensionless by declaration
COORD_ATTRS: dict[str, dict] = {
    FRAME: {"long_name": "frame index in the run"},
    TIMESTAMP: {"long_name": "frame time (UTC)"},
    LASER_ON: {"long_name": "pump laser on"},
    PULSE_ENERGY: {"long_name": "X-ray pulse energy", "units": "mJ"},
    FRAME_NUMBER: {"long_name": "detector frame number"},
    TRAIN_ID: {"long_name": "European XFEL train ID"},
    PULSE_ID: {"long_name": "pulse (memory cell) in the train"},
    STATUS: {
        "long_name": "frame status",
        "flag_values": [PENDING, DONE, BAD, SKIPPED],
        "flag_meanings": "pending done bad_frame skipped_by_sampling",
    },
}

#: how ``timestamp`` is stored (the CF encoding xarray reads back as datetime64[ns])
TIME_ENCODING = {"units": "nanoseconds since 1970-01-01", "calendar": "proleptic_gregorian"}
#: the stored int64 of NaT (also the store's fill value: a row not yet written reads NaT)
NAT_INT = int(np.datetime64("NaT", "ns").view(np.int64))


def is_dimensionless(units: str | None) -> bool:
    """True for the declarations of a dimensionless quantity: None, "" or "1"."""
    return units is None or units in ("", "1")


def cf_attrs(long_name: str, units: str | None) -> dict:
    """``{"long_name": ..., "units": ...}``, leaving ``units`` out when dimensionless."""
    out = {"long_name": long_name}
    if not is_dimensionless(units):
        out["units"] = units
    return out


def feature_attrs(spec) -> dict:
    """Attributes of a feature from its declaration: CF ``long_name`` (its ``description``)
    and ``units``, and how views and reports show it (``show``, ``flags``) when declared."""
    out = cf_attrs(spec.description or spec.name.replace("_", " "), spec.units)
    d = spec.to_dict()
    if d["show"] is not None or d["flags"]:
        # JSON text: netCDF attributes take no dicts (read back with declared_show_flags)
        out.update(show=json.dumps(d["show"]), flags=json.dumps(d["flags"]))
    return out


def declared_show_flags(attrs: dict) -> tuple:
    """A feature's ``show`` and ``flags`` declarations from its attributes (JSON text, or the
    dict and list of stores and Datasets made before they were kept as text)."""
    show, flags = attrs.get("show"), attrs.get("flags")
    show = json.loads(show) if isinstance(show, str) else show
    flags = json.loads(flags) if isinstance(flags, str) else flags
    return show, list(flags or ())


def coord_attrs(name: str) -> dict:
    """CF attributes of a per-frame metadata coordinate (a side-table column xlive does not
    know gets its name as long name and no units: its table does not say them)."""
    return dict(COORD_ATTRS.get(name, {"long_name": name.replace("_", " ")}))


def to_datetime64(values) -> np.ndarray:
    """Timestamps as ``datetime64[ns]``: float seconds since the epoch (NaN: NaT), or already
    datetime64 (returned as ``datetime64[ns]``)."""
    a = np.asarray(values)
    if a.dtype.kind == "M":
        return a.astype("datetime64[ns]")
    s = a.astype(np.float64)
    ns = np.full(s.shape, NAT_INT, np.int64)
    ok = np.isfinite(s)
    ns[ok] = np.round(s[ok] * 1e9).astype(np.int64)
    return ns.view("datetime64[ns]")


def to_seconds(values) -> np.ndarray:
    """Timestamps as float seconds since the epoch (NaT: NaN); floats are returned as they are."""
    a = np.asarray(values)
    if a.dtype.kind != "M":
        return a.astype(np.float64)
    ns = a.astype("datetime64[ns]").view(np.int64)
    out = ns.astype(np.float64) / 1e9
    out[np.isnat(a)] = np.nan
    return out


def encode_time(values) -> np.ndarray:
    """Timestamps (seconds or datetime64) as the stored int64 nanoseconds (NaT: int64 min)."""
    return to_datetime64(values).view(np.int64)
