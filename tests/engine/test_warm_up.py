"""warm_up reaches every kernel a run uses: none is left to load or compile on the first hit."""

from __future__ import annotations

import subprocess
import sys
import textwrap

#: run in a fresh interpreter, so that no other test has loaded any kernel beforehand
SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from numba.core.registry import CPUDispatcher
    from xlive.aggregate.reducers import default_reducers
    from xlive.analyzers import default_analyzers
    from xlive.engine.features import analyze_block, merge_partials
    from xlive.engine.live import warm_up
    from xlive.simulate import SimParams, Simulation
    from xlive.sources._bslz4 import bslz4_decode, bslz4_encode

    def overloads():
        return {
            f"{m}.{k}": len(v.overloads)
            for m, mod in list(sys.modules.items()) if m.startswith("xlive")
            for k, v in list(vars(mod).items()) if isinstance(v, CPUDispatcher)
        }

    sim = Simulation(SimParams(detector="eiger500k", hit_fraction=1.0), seed=3)
    frames = np.stack([sim.frame(i)[0] for i in range(4)])  # uint32, as the simulator writes
    u16 = np.minimum(frames, 65535).astype(np.uint16)  # as an EIGER stream carries them
    analyzers, reducers = default_analyzers(sim.geometry), default_reducers(sim.geometry)
    for dtype in (frames.dtype, np.uint16):  # a run's frames; an EIGER stream's
        warm_up(analyzers, frames.shape[1:], dtype, reducers)
    before = overloads()

    blobs = [bslz4_encode(f) for f in u16]

    class Reader:
        def read_one(self, i):
            if i < 4:
                return frames[i]
            if i < 8:
                return u16[i - 4]
            # read-only, as the stream spool's reader gives them (DECTRIS's decoder)
            return bslz4_decode(blobs[i - 8], dtype=np.uint16, shape=u16.shape[1:], writable=False)

    block = analyze_block(Reader(), analyzers, np.arange(12), reducers)
    proj = merge_partials([block.partials])["projections"]
    proj.sum_hits  # the driver folds the hits' projections when it reads them
    after = overloads()
    assert not block.bad.any()
    assert not Reader().read_one(8).flags.writeable
    print("hits", int(block.features["is_hit"].sum()))
    print("lattice", int(np.isfinite(block.features["multi_lattice_score"]).sum()))
    print("new", sorted(k for k in after if after[k] != before.get(k, 0)))
    """
)


def test_warm_up_leaves_no_kernel_for_the_first_hit():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600, check=True
    ).stdout
    lines = dict(line.split(" ", 1) for line in out.strip().splitlines())
    # the frames do reach the hit-only paths (spots, lattice score, projections of hits) ...
    assert int(lines["hits"]) >= 1 and int(lines["lattice"]) >= 1, out
    # ... and warm_up had loaded every kernel they use
    assert lines["new"] == "[]", out
