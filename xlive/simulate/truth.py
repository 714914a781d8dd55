"""Ground truth beside a simulated run: ``OUT/truth.zarr``.

Layout (all arrays 1-D; per-frame arrays are indexed by the stored frame index):

=================  =======  ==============================================================
per frame          dtype    meaning
=================  =======  ==============================================================
frame_number       int64    detector trigger counter (skips numbers at dropped frames)
hit                bool     a crystal diffracted in this frame
n_lattices         int8     number of crystals (0, 1, 2)
jet_on             bool     the liquid jet hit the beam (water ring present)
ice                bool     ice rings present
laser_on           bool     pump laser fired
pulse_energy       float32  relative pulse energy (mJ)
n_spots            int32    spots with integrated SNR >= 10 on unmasked pixels
d_min              float32  resolution of the detectable spots (see xlive.simulate.model)
spot_start         int64    offset of this frame's first spot in the spot table
spot_count         int32    rows of this frame in the spot table
zinger_start       int64    offset of this frame's first zinger in the zinger table
zinger_count       int32    rows of this frame in the zinger table
=================  =======  ==============================================================

Spot table (``spot_*`` arrays, one row per spot, rows of frame i at
``spot_start[i] : spot_start[i] + spot_count[i]``): ``spot_frame``, ``spot_x``, ``spot_y``
(array-index coordinates: pixel j's centre is j), ``spot_h/k/l``, ``spot_d`` (Å),
``spot_photons`` (expected photons), ``spot_snr`` (integrated SNR, see
:mod:`xlive.simulate.model` and :mod:`xlive.simulate.footprint`), ``spot_lattice``,
``spot_masked``, ``spot_sigma_r``/``spot_sigma_t`` (radial/tangential Gaussian widths,
pixels), ``spot_signal`` (expected photons on the footprint), ``spot_npix`` (footprint
pixels), ``spot_blended`` (merged with a neighbour into one lump), ``spot_separation``
(distance to the nearest comparable neighbour in units of the two widths; < 1 blended).
Zinger table (``zinger_frame``, ``zinger_x``, ``zinger_y``, ``zinger_counts``), rows of frame i
at ``zinger_start[i] : zinger_start[i] + zinger_count[i]``.
Group attributes: ``frames_complete``, ``dropped_frame_numbers``, ``params`` (SimParams),
``hot_pixels`` (the run's hot pixels, same in every frame: ``{"x": [...], "y": [...],
"counts": [...]}``). Runs written before these fields existed read back without them.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import zarr

from ..conventions import FRAMES_COMPLETE
from .model import FrameTruth

FRAME_FIELDS = {
    "frame_number": "int64",
    "hit": "bool",
    "n_lattices": "int8",
    "jet_on": "bool",
    "ice": "bool",
    "laser_on": "bool",
    "pulse_energy": "float32",
    "n_spots": "int32",
    "d_min": "float32",
    "spot_start": "int64",
    "spot_count": "int32",
    "zinger_start": "int64",
    "zinger_count": "int32",
}
SPOT_FIELDS = {
    "frame": "int64",
    "x": "float32",
    "y": "float32",
    "h": "int32",
    "k": "int32",
    "l": "int32",
    "d": "float32",
    "photons": "float32",
    "snr": "float32",
    "lattice": "int8",
    "masked": "bool",
    "sigma_r": "float32",
    "sigma_t": "float32",
    "signal": "float32",
    "npix": "int32",
    "blended": "bool",
    "separation": "float32",
}
ZINGER_FIELDS = {"frame": "int64", "x": "float32", "y": "float32", "counts": "float32"}


class TruthWriter:
    def __init__(self, path: str | Path, params: dict, hot_pixels: dict | None = None):
        self.group = zarr.open_group(str(path), mode="w-")
        hot = {key: [float(v) for v in vals] for key, vals in (hot_pixels or {}).items()}
        self.group.attrs.update(
            {FRAMES_COMPLETE: 0, "dropped_frame_numbers": [], "params": params, "hot_pixels": hot}
        )
        self.arrays = {
            name: self.group.create_array(name, shape=(0,), chunks=(8192,), dtype=dt, fill_value=0)
            for name, dt in FRAME_FIELDS.items()
        }
        self.spots = {
            name: self.group.create_array(
                f"spot_{name}", shape=(0,), chunks=(65536,), dtype=dt, fill_value=0
            )
            for name, dt in SPOT_FIELDS.items()
        }
        self.zingers = {
            name: self.group.create_array(
                f"zinger_{name}", shape=(0,), chunks=(65536,), dtype=dt, fill_value=0
            )
            for name, dt in ZINGER_FIELDS.items()
        }
        self.n = 0
        self.n_spots = 0
        self.n_zingers = 0
        self.dropped: list[int] = []
        self._pending: list[tuple[list[FrameTruth], list[int]]] = []
        self._last_flush = time.monotonic()

    def append(self, truths: list[FrameTruth], dropped: list[int], *, every: float = 1.0) -> None:
        """Buffer truth of a batch; written to disk at most every ``every`` seconds."""
        self._pending.append((truths, dropped))
        if time.monotonic() - self._last_flush >= every:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        truths = [t for batch, _ in self._pending for t in batch]
        dropped = [d for _, batch in self._pending for d in batch]
        self._pending = []
        self._last_flush = time.monotonic()
        rows = {name: [] for name in FRAME_FIELDS}
        spot_rows = {name: [] for name in SPOT_FIELDS}
        zinger_rows = {name: [] for name in ZINGER_FIELDS}
        start = self.n_spots
        zstart = self.n_zingers
        for i, t in enumerate(truths):
            count = len(t.spots["x"])
            zcount = len(t.zingers["x"])
            vals = dict(
                frame_number=t.frame_number,
                hit=t.hit,
                n_lattices=t.n_lattices,
                jet_on=t.jet_on,
                ice=t.ice,
                laser_on=t.laser_on,
                pulse_energy=t.pulse_energy,
                n_spots=t.n_spots,
                d_min=t.d_min,
                spot_start=start,
                spot_count=count,
                zinger_start=zstart,
                zinger_count=zcount,
            )
            for name in FRAME_FIELDS:
                rows[name].append(vals[name])
            for name in SPOT_FIELDS:
                if name == "frame":
                    spot_rows[name].append(np.full(count, self.n + i))
                else:
                    spot_rows[name].append(t.spots[name])
            for name in ZINGER_FIELDS:
                if name == "frame":
                    zinger_rows[name].append(np.full(zcount, self.n + i))
                else:
                    zinger_rows[name].append(t.zingers[name])
            start += count
            zstart += zcount
        _append(self.arrays, {k: np.asarray(v) for k, v in rows.items()})
        _append(
            self.spots, {k: np.concatenate(v) if v else np.zeros(0) for k, v in spot_rows.items()}
        )
        _append(
            self.zingers,
            {k: np.concatenate(v) if v else np.zeros(0) for k, v in zinger_rows.items()},
        )
        self.n += len(truths)
        self.n_spots = start
        self.n_zingers = zstart
        self.dropped.extend(int(d) for d in dropped)
        self.group.attrs.update({FRAMES_COMPLETE: self.n, "dropped_frame_numbers": self.dropped})


def _append(arrays: dict, values: dict) -> None:
    for name, a in arrays.items():
        v = np.asarray(values[name], dtype=a.dtype)
        if v.size:
            a.append(v)


def read_truth(path: str | Path) -> dict:
    """Read ``truth.zarr`` into numpy arrays: per-frame fields, ``spots`` (dict), attrs."""
    g = zarr.open_group(str(path), mode="r")
    n = int(g.attrs[FRAMES_COMPLETE])
    have = set(g.array_keys())
    out = {name: g[name][:n] for name in FRAME_FIELDS if name in have}
    m = int(out["spot_start"][-1] + out["spot_count"][-1]) if n else 0
    out["spots"] = {name: g[f"spot_{name}"][:m] for name in SPOT_FIELDS if f"spot_{name}" in have}
    if "zinger_start" in out:
        z = int(out["zinger_start"][-1] + out["zinger_count"][-1]) if n else 0
        out["zingers"] = {name: g[f"zinger_{name}"][:z] for name in ZINGER_FIELDS}
    out["hot_pixels"] = {k: np.asarray(v) for k, v in g.attrs.get("hot_pixels", {}).items()}
    out["dropped_frame_numbers"] = list(g.attrs["dropped_frame_numbers"])
    out["params"] = dict(g.attrs["params"])
    return out
