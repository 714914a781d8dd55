"""Beamtime simulator: physically modelled serial-crystallography frames with ground truth.

``write_run(out, frames=..., rate=..., fmt="zarr"|"eiger-h5"|"cbf")`` writes a run
progressively; ``Simulation(SimParams(...)).frame(i)`` gives one frame and its truth in memory.

The names below load their module on first use: every ``xlive`` command builds its parser
with the simulator's options (``xlive.simulate.params``), and importing the whole simulator
(scipy.special, scipy.spatial, zarr) cost ``xlive serve`` ~0.4 s before its page was served.
"""

from __future__ import annotations

import importlib

#: public name -> module (in this package) that defines it
_LAZY = {
    "BackgroundRun": "background",
    "RotationSimulation": "background",
    "RotationSweep": "background",
    "start_run": "background",
    "FrameTruth": "model",
    "Simulation": "model",
    "SimParams": "params",
    "FORMATS": "params",
    "RUN_FILE": "run",
    "RunSummary": "run",
    "write_run": "run",
    "read_truth": "truth",
}

__all__ = [
    "BackgroundRun",
    "RotationSimulation",
    "RotationSweep",
    "start_run",
    "FORMATS",
    "RUN_FILE",
    "FrameTruth",
    "RunSummary",
    "SimParams",
    "Simulation",
    "read_truth",
    "write_run",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
