"""A simulated run written in the background, as a detector would, for notebooks and demos.

:func:`start_run` starts :func:`~xlive.simulate.write_run` in a thread and returns a
:class:`BackgroundRun` handle once the first frame is on disk: monitor ``handle.path`` while
frames keep arriving, ``handle.wait()`` for the end, ``handle.stop()`` to end it early (or use
it as a context manager).

:class:`RotationSweep` turns the run into a rotation series of one crystal: frame ``n`` shows
the crystal turned by ``start + n * step`` degrees about a goniometer axis. Each frame is drawn
as a still at that angle (the simulator's partiality comes from the mosaic spread and the
bandwidth, not from integrating over the oscillation), which is what fine-sliced data look like
when the step is below the mosaic spread (0.1 deg steps, 0.15 deg mosaicity by default); wider
steps would need partiality integrated over the step, which this does not do.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .lattice import random_rotation
from .model import Simulation
from .params import SimParams
from .run import RunSummary, check_options, write_run


@dataclass(frozen=True, kw_only=True)
class RotationSweep:
    """A rotation series: one crystal turned by ``step`` degrees per frame about ``axis``."""

    #: angle of frame 0, degrees
    start: float = 0.0
    #: rotation per frame, degrees (the oscillation width of a frame)
    step: float = 0.1
    #: goniometer axis in the laboratory frame (x horizontal, z along the beam)
    axis: tuple[float, float, float] = (1.0, 0.0, 0.0)

    def __post_init__(self):
        if not np.isfinite(self.step) or self.step == 0:
            raise ConfigError(f"rotation step must be a finite non-zero angle, got {self.step}")
        if len(self.axis) != 3 or not np.linalg.norm(self.axis) > 0:
            raise ConfigError(f"rotation axis must be a non-zero 3-vector, got {self.axis}")

    def angle(self, frame_number) -> np.ndarray:
        """Goniometer angle (degrees) of detector frame(s) ``frame_number``."""
        return self.start + self.step * np.asarray(frame_number, dtype=float)

    def matrix(self, frame_number: int) -> np.ndarray:
        """The goniometer rotation of frame ``frame_number`` (3 x 3, Rodrigues' formula)."""
        u = np.asarray(self.axis, float) / np.linalg.norm(self.axis)
        phi = np.radians(float(self.angle(frame_number)))
        k = np.array([[0.0, -u[2], u[1]], [u[2], 0.0, -u[0]], [-u[1], u[0], 0.0]])
        return np.eye(3) + np.sin(phi) * k + (1.0 - np.cos(phi)) * (k @ k)


class RotationSimulation(Simulation):
    """A :class:`~xlive.simulate.Simulation` of one crystal in a rotation series.

    Every frame shows the same crystal (orientation drawn once from the seed), turned by the
    sweep's angle; frames lost by ``dropped_fraction`` are still dropped, and ``dose_decay``
    still weakens diffraction frame by frame (fewer, weaker spots at lower resolution).

    Examples
    --------
    >>> sim = RotationSimulation(RotationSweep(step=0.5), SimParams(detector="eiger500k"))
    >>> _, truth = sim.frame(3)
    >>> truth.hit, truth.n_lattices
    (True, 1)
    """

    def __init__(self, sweep: RotationSweep, params: SimParams | None = None, **kwargs):
        params = params if params is not None else SimParams(**kwargs)
        # recorded in the run's description (xlive-run.json), so readers know the angles
        extra = {**params.extra, "rotation": {**asdict(sweep), "axis": list(sweep.axis)}}
        params = SimParams.from_dict({**params.to_dict(), "hit_fraction": 1.0, "extra": extra})
        super().__init__(params)
        self.sweep = sweep
        self.orientation = random_rotation(np.random.default_rng([params.seed, 7]))

    def event(self, frame_number: int):
        truth, k, _ = super().event(frame_number)
        truth.hit = True
        truth.n_lattices = 1
        return truth, k, [self.sweep.matrix(frame_number) @ self.orientation]


@dataclass
class BackgroundRun:
    """A simulated run being written by a background thread (see :func:`start_run`).

    Attributes
    ----------
    path
        The run folder (open it with ``xlive.open_source``, ``xlive.Monitor``, ...).
    frames
        Frames the run will have when it ends (unless stopped).
    sweep
        The :class:`RotationSweep` of a rotation series, else None.
    """

    path: Path
    frames: int
    sweep: RotationSweep | None
    _thread: threading.Thread
    _stop: threading.Event
    _box: dict

    @property
    def frames_written(self) -> int:
        """Frames on disk so far."""
        return self._box["written"]

    @property
    def running(self) -> bool:
        """True while the writer thread is still writing."""
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> RunSummary:
        """Block until the run has ended; its :class:`~xlive.simulate.RunSummary`.

        Raises
        ------
        TimeoutError
            When the run has not ended after ``timeout`` seconds.
        """
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(
                f"the simulated run {self.path} is still being written after {timeout:g} s "
                f"({self.frames_written} of {self.frames} frames); wait again or stop() it"
            )
        if "error" in self._box:
            raise self._box["error"]
        return self._box["summary"]

    def stop(self, timeout: float | None = 30.0) -> RunSummary:
        """End the run now (it is marked complete with the frames written so far)."""
        self._stop.set()
        return self.wait(timeout)

    def __enter__(self) -> BackgroundRun:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "writing" if self.running else "ended"
        return f"<BackgroundRun {self.path} {state}: {self.frames_written} of {self.frames} frames>"


def start_run(
    out: str | Path | None = None,
    *,
    frames: int,
    rate: float = 30.0,
    rotation: RotationSweep | None = None,
    timeout: float = 120.0,
    **write_run_kw,
) -> BackgroundRun:
    """Start writing a simulated run in a background thread; return once frame 0 is written.

    Parameters
    ----------
    out
        Run folder (None: a new temporary folder, ``.../run``).
    frames, rate
        Frames to write and frames per second (0: as fast as possible).
    rotation
        Make it a rotation series of one crystal (:class:`RotationSweep`); else serial stills.
    timeout
        Seconds to wait for the first frame.
    **write_run_kw
        Passed to :func:`~xlive.simulate.write_run`: ``fmt``, ``detector``, ``hit_fraction``,
        ``jet_loss``, ``dose_decay``, ... (any :class:`~xlive.simulate.SimParams` field).

    Returns
    -------
    BackgroundRun
        ``.path``, ``.wait()``, ``.stop()``; a context manager that stops the run on exit.

    Examples
    --------
    >>> with start_run(frames=20, rate=100, detector="eiger500k") as run:
    ...     summary = run.wait(timeout=60)
    >>> summary.frames
    20
    """
    check_options(frames=frames, rate=rate, fmt=write_run_kw.get("fmt", "zarr"))
    out = Path(tempfile.mkdtemp(prefix="xlive-run-")) / "run" if out is None else Path(out)
    if rotation is not None:
        params = write_run_kw.pop("params", None)
        sim_kw = {k: write_run_kw.pop(k) for k in list(write_run_kw) if k in _SIM_FIELDS}
        write_run_kw["simulation"] = RotationSimulation(rotation, params, **sim_kw)
    stop = threading.Event()
    first = threading.Event()
    box: dict = {"written": 0}

    def progress(n: int) -> None:
        box["written"] += n
        first.set()

    def target() -> None:
        try:
            box["summary"] = write_run(
                out, frames=frames, rate=rate, progress=progress, stop=stop, **write_run_kw
            )
        except BaseException as e:  # raised again by wait()
            box["error"] = e
        finally:
            first.set()

    thread = threading.Thread(target=target, name=f"xlive-sim-{out.name}", daemon=True)
    thread.start()
    t_end = time.monotonic() + timeout
    while not first.wait(0.1):
        if time.monotonic() > t_end:
            stop.set()
            raise TimeoutError(f"the simulated run {out} wrote no frame within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return BackgroundRun(out, frames, rotation, thread, stop, box)


_SIM_FIELDS = frozenset(SimParams.__dataclass_fields__)
