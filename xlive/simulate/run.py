"""Write a simulated run progressively, at a given frame rate, for live readers.

Run folder layout: ``xlive-run.json`` (what and where), the data (``run.zarr``,
``NAME_master.h5`` + ``NAME_data_*.h5``, or ``NAME_*.cbf``), ``metadata.csv`` (per-frame
metadata, for the HDF5 and CBF formats), and ``truth.zarr`` (see :mod:`xlive.simulate.truth`).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..conventions import FRAME_NUMBER, LASER_ON, PULSE_ENERGY, TIMESTAMP
from ..errors import ConfigError
from ..geometry.detectors import IntegratingModel
from .model import Simulation
from .params import FORMATS, SimParams
from .truth import TruthWriter

RUN_FILE = "xlive-run.json"
#: CrystFEL geometry written beside runs of multi-panel detectors
GEOM_FILE = "detector.geom"


@dataclass(frozen=True)
class RunSummary:
    path: Path
    frames: int
    dropped: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


def check_options(
    *,
    frames: int,
    rate: float,
    fmt: str,
    frames_per_file: int = 100,
    out: str | Path | None = None,
    overwrite: bool = False,
) -> None:
    """Raise ConfigError for options a run cannot have (before anything is written)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if frames < 1:
        raise ConfigError(f"--frames must be >= 1, got {frames}")
    if not (rate == 0 or 1 / 3600 <= rate < float("inf")):  # also refuses NaN
        raise ConfigError(
            f"--rate must be 0 (as fast as possible) or a finite rate of at least "
            f"one frame per hour ({1 / 3600:.6g} frames/s), got {rate}"
        )
    if frames_per_file < 1:
        raise ConfigError(f"--frames-per-file must be >= 1, got {frames_per_file}")
    if out is not None and not overwrite:
        out = Path(out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ConfigError(
                f"{out} already holds files; choose a new folder or pass --overwrite to replace it"
            )


def prepare_folder(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; give a folder for the run")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(
                f"{out} already holds files; choose a new folder or pass --overwrite to replace it"
            )
        if not (out / RUN_FILE).exists():
            raise ConfigError(
                f"{out} holds files but no simulated run ({RUN_FILE}); --overwrite only replaces "
                "runs written by xlive simulate: choose a new folder"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name("." + path.name + ".part")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def plan(sim: Simulation):
    """Yield ``(trigger number, dropped)`` for every detector trigger, lazily."""
    n = 0
    while True:
        yield n, sim.event(n)[0].dropped
        n += 1


def write_run(
    out: str | Path,
    *,
    frames: int,
    rate: float = 100.0,
    fmt: str = "zarr",
    name: str = "run",
    overwrite: bool = False,
    frames_per_file: int = 100,
    params: SimParams | None = None,
    progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    simulation: Simulation | None = None,
    **sim_kwargs,
) -> RunSummary:
    """Simulate a run into folder ``out``, writing ``rate`` frames per second (0: no pacing).

    Examples
    --------
    >>> import tempfile
    >>> s = write_run(tempfile.mkdtemp() + "/run", frames=4, rate=0, detector="eiger500k")
    >>> s.frames
    4
    """
    check_options(frames=frames, rate=rate, fmt=fmt, frames_per_file=frames_per_file)
    sim = simulation if simulation is not None else Simulation(params or SimParams(**sim_kwargs))
    params = sim.params
    if isinstance(sim.detector, IntegratingModel) and fmt != "zarr":
        raise ConfigError(
            f"{sim.detector.name} is a multi-panel integrating detector: simulate it with "
            f"--format zarr (the CrystFEL geometry of its panels is written beside the run as "
            f"{GEOM_FILE}); {fmt} headers describe one flat panel only"
        )
    out = Path(out)
    prepare_folder(out, overwrite)
    det = sim.detector
    triggers = plan(sim)
    n_dropped = 0
    frame_time = 1.0 / rate if rate > 0 else 0.01
    data_name = {"zarr": "run.zarr", "eiger-h5": f"{name}_master.h5", "cbf": f"{name}_*.cbf"}[fmt]
    description = {
        "format": fmt,
        "detector": det.name,
        "geometry": sim.geometry.to_dict(),
        "frames_planned": frames,
        "rate": rate,
        "seed": params.seed,
        "data": data_name,
        "truth": "truth.zarr",
        "metadata": None if fmt == "zarr" else "metadata.csv",
        "params": params.to_dict(),
        "complete": False,
    }
    if isinstance(det, IntegratingModel):
        from ..geometry.crystfel import write_crystfel_geom

        write_crystfel_geom(sim.geometry, out / GEOM_FILE)
        description["crystfel_geometry"] = GEOM_FILE
    _write_json(out / RUN_FILE, description)
    sim.prepare()  # noisy backgrounds first: no CPU burst once frames are flowing
    writer = _make_writer(fmt, out, name, sim, frames, frames_per_file, frame_time)
    truth = TruthWriter(out / "truth.zarr", params.to_dict(), hot_pixels=sim.hot_pixel_truth)
    csv = None if fmt == "zarr" else open(out / "metadata.csv", "w")  # noqa: SIM115
    if csv:
        csv.write("frame,frame_number,timestamp,laser_on,pulse_energy\n")
        csv.flush()

    batch = max(1, min(32, int(round(rate * 0.1)) if rate > 0 else 16))
    t0 = time.time()
    q: queue.Queue = queue.Queue(maxsize=2)
    errors: list[BaseException] = []

    def consume():
        while (item := q.get()) is not None:
            try:
                imgs, meta, truths, drop, keys = item
                writer.append(imgs, meta, keys) if fmt == "zarr" else writer.append(imgs, meta)
                if csv:
                    base = writer.n - len(imgs)
                    for i in range(len(imgs)):
                        csv.write(
                            f"{base + i},{meta[FRAME_NUMBER][i]},{meta[TIMESTAMP][i]:.6f},"
                            f"{int(meta[LASER_ON][i])},{meta[PULSE_ENERGY][i]:.5f}\n"
                        )
                    csv.flush()
                truth.append(truths, drop)
                if progress:
                    progress(len(imgs))
            except BaseException as e:  # surfaced in the producer
                errors.append(e)
                return

    thread = threading.Thread(target=consume, name="xlive-sim-writer", daemon=True)
    thread.start()
    written = 0
    try:
        while written < frames:
            if errors or (stop is not None and stop.is_set()):
                break
            numbers, drop = [], []
            while len(numbers) < min(batch, frames - written):
                n, dropped_here = next(triggers)
                (drop if dropped_here else numbers).append(n)
            n_dropped += len(drop)
            if rate > 0:  # pace by trigger time of the last frame of the batch
                wait = t0 + (numbers[-1] + 1) / rate - time.time()
                if wait > 0:
                    time.sleep(wait)
            imgs, truths, keys = [], [], []
            for n in numbers:
                img, t, key = sim.frame_shared(n)
                imgs.append(img)
                truths.append(t)
                keys.append(key)
            meta = {
                TIMESTAMP: np.array([t0 + n * frame_time for n in numbers]),
                LASER_ON: np.array([t.laser_on for t in truths]),
                PULSE_ENERGY: np.array([t.pulse_energy for t in truths], np.float32),
                FRAME_NUMBER: np.array(numbers, np.int64),
            }
            while thread.is_alive():
                try:
                    q.put((imgs, meta, truths, drop, keys), timeout=0.5)
                    break
                except queue.Full:
                    continue
            written += len(numbers)
    finally:
        if thread.is_alive():
            q.put(None)
        thread.join()
        writer.close()
        truth.flush()
        if csv:
            csv.close()
        # tell readers the run has ended (what a detector's end-of-series message says)
        _write_json(
            out / RUN_FILE,
            {
                **description,
                "complete": True,
                "frames_written": written,
                "frames_dropped": n_dropped,
            },
        )
    if errors:
        raise errors[0]
    return RunSummary(out, written, n_dropped, time.time() - t0)


def _make_writer(fmt, out, name, sim, frames, frames_per_file, frame_time):
    det, geom = sim.detector, sim.geometry
    if fmt == "zarr":
        from .write_zarr import ZarrRunWriter

        return ZarrRunWriter(
            out / "run.zarr",
            geometry=geom,
            pixel_mask=sim.pixel_mask,
            dtype=det.dtype,
            detector=det.name,
        )
    if fmt == "eiger-h5":
        from .write_eiger import EigerRunWriter

        return EigerRunWriter(
            out,
            name=name,
            geometry=geom,
            pixel_mask=sim.pixel_mask,
            dtype=det.dtype,
            n_frames=frames,
            frames_per_file=frames_per_file,
            description=det.description,
            frame_time=frame_time,
            saturation_value=det.saturation_value,
        )
    from .write_cbf import CbfRunWriter

    return CbfRunWriter(
        out,
        name=name,
        geometry=geom,
        description=det.description,
        frame_time=frame_time,
        saturation_value=det.saturation_value,
    )
