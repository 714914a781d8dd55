"""European XFEL mock runs with simulated diffraction, for tests and benchmarks.

The run files are written by extra-data's own mock-data writers
(:mod:`extra_data.tests.mockdata`: the real file layout, INDEX and METADATA included); the
corrected image data are then replaced with frames of the integrating-detector simulation
(:class:`~xlive.detectors.IntegratingModel`, whose stacked-module array is the detector's
``(modules, ss, fs)`` data), and the simulation's CrystFEL geometry is written beside the run.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..errors import ConfigError
from .model import Simulation
from .params import SimParams

#: xlive detector model -> (EuXFEL detector name, module source pattern, mock module class)
LAYOUTS = {
    "agipd1m": ("SPB_DET_AGIPD1M-1", "SPB_DET_AGIPD1M-1/DET/{m}CH0", "agipd"),
    "jungfrau1m": ("SPB_IRDA_JF4M", "SPB_IRDA_JF4M/DET/JNGFR{m1:02}", "jungfrau"),
    "jungfrau4m": ("SPB_IRDA_JF4M", "SPB_IRDA_JF4M/DET/JNGFR{m1:02}", "jungfrau"),
}


def write_euxfel_run(
    out: str | Path,
    *,
    detector: str = "agipd1m",
    trains: int = 3,
    pulses: int = 4,
    first_train: int = 10000,
    **sim_kwargs,
) -> Simulation:
    """Write a corrected (proc) mock run of ``detector`` into folder ``out``.

    Frame ``i`` of the simulation is pulse ``i % pulses`` of train ``first_train + i //
    pulses`` (JUNGFRAU: 16 memory cells per train, ``pulses`` is ignored). The CrystFEL
    geometry goes beside the run folder, ``<out>.geom`` (extra-data reads every .h5 file in
    the folder, so the geometry's mask file stays out of it). Returns the simulation (its
    ``frame(i)`` gives the truth).
    """
    try:
        from extra_data.tests.mockdata import write_file
        from extra_data.tests.mockdata.detectors import AGIPDModule
        from extra_data.tests.mockdata.jungfrau import JUNGFRAUModule
    except ImportError:  # pragma: no cover - the extra is installed in CI
        raise ConfigError("mock EuXFEL runs need extra-data: pip install 'xlive[xfel]'") from None
    if detector not in LAYOUTS:
        raise ConfigError(f"no EuXFEL layout for {detector!r}; choose one of {sorted(LAYOUTS)}")
    name, pattern, family = LAYOUTS[detector]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sim = Simulation(SimParams(detector=detector, **sim_kwargs))
    if out.suffix:
        raise ConfigError(f"give a run folder name without a suffix, got {out.name!r}")
    det = sim.detector
    ms = det.module_shape[0]
    per_train = 16 if family == "jungfrau" else pulses
    frames = np.stack([sim.frame(i)[0] for i in range(trains * per_train)])
    frames = frames.reshape(trains, per_train, det.n_modules, ms, -1)
    for m in range(det.n_modules):
        source = pattern.format(m=m, m1=m + 1)
        path = out / f"CORR-R0001-{'AGIPD' if family == 'agipd' else 'JNGFR'}{m:02}-S00000.h5"
        if family == "agipd":
            dev = AGIPDModule(source, frames_per_train=pulses, raw=False)
            key = f"INSTRUMENT/{source}:xtdf/image/data"
        else:
            dev = JUNGFRAUModule(source, nsamples=trains, raw=False)
            key = f"INSTRUMENT/{source}:daqOutput/data/adc"
        write_file(
            str(path),
            [dev],
            ntrains=trains,
            firsttrain=first_train,
            chunksize=1 if family == "jungfrau" else per_train,
            format_version="1.0",
        )
        with h5py.File(path, "r+") as f:
            ds = f[key]
            block = frames[:, :, m]  # (trains, per_train, ss, fs)
            ds[...] = block.reshape(ds.shape).astype(ds.dtype)
    from ..geometry.crystfel import write_crystfel_geom

    write_crystfel_geom(sim.geometry, out.with_suffix(".geom"))
    return sim
