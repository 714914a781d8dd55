"""Beamtime simulator: physically modelled serial-crystallography frames with ground truth.

``write_run(out, frames=..., rate=..., fmt="zarr"|"eiger-h5"|"cbf")`` writes a run
progressively; ``Simulation(SimParams(...)).frame(i)`` gives one frame and its truth in memory.
"""

from __future__ import annotations

from .background import BackgroundRun, RotationSimulation, RotationSweep, start_run
from .model import FrameTruth, Simulation
from .params import SimParams
from .run import FORMATS, RUN_FILE, RunSummary, write_run
from .truth import read_truth

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
