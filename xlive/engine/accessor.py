"""The ``.xlive`` accessor of feature Datasets: the questions asked of a run, as methods.

Registered on every ``xarray.Dataset`` as soon as :func:`xlive.analyze` or
:func:`xlive.open_features` is imported (``import xlive`` alone stays quick), so these read
the same on ``analyze(run)``, ``open_features(store)`` and ``xarray.open_zarr(store)``::

    ds = xlive.open_features("features.zarr")
    ds.xlive.hits()                      # computed frames found to be hits
    ds.xlive.powder().plot()             # mean radial profile of the hits (virtual powder)
    ds.xlive.hit_rate(200).plot()        # hit fraction over the last 200 frames, frame order
    ds.xlive.status_counts()             # {"done": 480, "bad": 2, "skipped": 18, "pending": 0}

Each returns plain xarray objects (lazy when the Dataset is), with CF attributes, so
``.plot()`` labels its axes from them.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..conventions import FRAME
from ..errors import ConfigError
from .cf import BAD, DONE, PENDING, SKIPPED, STATUS

_STATUS_NAMES = {"pending": PENDING, "done": DONE, "bad": BAD, "skipped": SKIPPED}


@xr.register_dataset_accessor("xlive")
class XliveAccessor:
    """Run-level views of a Dataset of per-frame features (``ds.xlive``).

    Parameters
    ----------
    ds
        A Dataset as :func:`xlive.analyze` or :func:`xlive.open_features` gives (dims ``frame``
        first, a ``status`` coordinate, features such as ``is_hit`` and ``radial_profile``).

    Examples
    --------
    >>> ds = xlive.open_features("features.zarr")         # doctest: +SKIP
    >>> ds.xlive.hits().n_spots.median().item()             # doctest: +SKIP
    """

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    def _need(self, *names: str, what: str) -> None:
        missing = [n for n in names if n not in self._ds.variables]
        if missing:
            raise ConfigError(
                f"{what} needs {missing}, which this Dataset lacks; compute them with the "
                "default analyzers (xlive.analyze(run) or `xlive process RUN --out FEATURES`)"
            )

    def done(self) -> xr.Dataset:
        """The frames whose features are computed (``status`` done), in frame order.

        Returns
        -------
        xarray.Dataset
            ``xarray.open_zarr(store).xlive.done()`` equals ``xlive.open_features(store)``.
        """
        ds = self._ds
        if STATUS not in ds.coords:  # a selection that dropped status: all of it is computed
            return ds
        keep = np.flatnonzero(np.asarray(ds[STATUS].values) == DONE)
        return ds.isel({FRAME: keep})

    def hits(self) -> xr.Dataset:
        """The computed frames found to be hits (``is_hit``), in frame order.

        Returns
        -------
        xarray.Dataset
            Every feature and coordinate of the hit frames only.
        """
        self._need("is_hit", what="hits()")
        ds = self.done()
        return ds.isel({FRAME: np.flatnonzero(np.asarray(ds["is_hit"].values, bool))})

    def powder(self, *, hits_only: bool = True) -> xr.DataArray:
        """The virtual powder pattern: the mean radial profile over the hits (or all frames).

        Parameters
        ----------
        hits_only
            Average the hits only (default); False: every computed frame.

        Returns
        -------
        xarray.DataArray
            Mean intensity per ``q`` bin (with ``d`` as a coordinate), NaN-aware; its
            attributes say what it is and how many frames went in (``n_frames``).
        """
        self._need("radial_profile", what="powder()")
        ds = self.hits() if hits_only else self.done()
        prof = ds["radial_profile"]
        out = prof.mean(FRAME, skipna=True) if ds.sizes[FRAME] else prof.isel({FRAME: 0}) * np.nan
        which = "hits" if hits_only else "computed frames"
        out.attrs = {
            **prof.attrs,
            "long_name": f"mean radial profile of the {which}",
            "n_frames": int(ds.sizes[FRAME]),
        }
        out.name = "powder"
        return out

    def hit_rate(self, window: int = 100) -> xr.DataArray:
        """The hit fraction over the last ``window`` computed frames, in frame order.

        Parameters
        ----------
        window
            Frames per window (at least 1); the first frames use as many as there are.

        Returns
        -------
        xarray.DataArray
            One value per computed frame (dim ``frame``), between 0 and 1.
        """
        if not isinstance(window, (int, np.integer)) or isinstance(window, bool) or window < 1:
            raise ConfigError(f"hit_rate(window): a positive number of frames, got {window!r}")
        self._need("is_hit", what="hit_rate()")
        ds = self.done().sortby(FRAME)
        hit = ds["is_hit"].astype(np.float64)
        rate = hit.rolling({FRAME: int(window)}, min_periods=1).mean()
        rate.attrs = {"long_name": f"hit rate over {int(window)} frames", "window": int(window)}
        rate.name = "hit_rate"
        return rate

    def status_counts(self) -> dict[str, int]:
        """How many frames are done, bad, skipped by sampling and pending.

        Returns
        -------
        dict
            ``{"done": ..., "bad": ..., "skipped": ..., "pending": ...}``.
        """
        if STATUS not in self._ds.coords:
            return {"done": int(self._ds.sizes[FRAME]), "bad": 0, "skipped": 0, "pending": 0}
        st = np.asarray(self._ds[STATUS].values)
        return {name: int(np.count_nonzero(st == v)) for name, v in _STATUS_NAMES.items()}

    def label(self, name: str) -> str:
        """An axis label for variable or coordinate ``name``: its ``long_name`` and, when it
        has units, ``[units]`` (as xarray's own plots label axes).

        Parameters
        ----------
        name
            A variable or coordinate of the Dataset.

        Returns
        -------
        str
            e.g. ``"spots found"`` or ``"highest resolution of the spots [angstrom]"``.
        """
        if name not in self._ds.variables:
            raise ConfigError(
                f"label({name!r}): no such variable; have {sorted(self._ds.variables)}"
            )
        attrs = self._ds[name].attrs
        text = str(attrs.get("long_name") or name)
        units = attrs.get("units")
        return f"{text} [{units}]" if units else text
