"""The worker set-up and the classes of :mod:`xlive.engine.cluster` built on
dask.distributed's (see that module's docstring): here, so that importing
:mod:`xlive.engine.cluster` (and the live loop) does not import distributed; it is imported
with the first client. :mod:`xlive.engine.cluster` gives these names too."""

from __future__ import annotations

import ctypes
import logging
import math
from collections.abc import Callable

from distributed import WorkerPlugin
from distributed.deploy.adaptive import Adaptive

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MIB = 2**20


def keep_frame_buffers(mmap_threshold: int = 32 * MIB, trim_threshold: int = 256 * MIB) -> bool:
    """Have glibc serve allocations up to ``mmap_threshold`` from the heap and keep up to
    ``trim_threshold`` bytes of freed heap; False where ``mallopt`` is missing or refuses."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(M_TRIM_THRESHOLD, trim_threshold)
    )
    if not ok:
        log.info("mallopt refused the frame-buffer settings; large frames are mmapped each time")
    return ok


class FrameBuffers(WorkerPlugin):
    """Runs :func:`keep_frame_buffers` on each worker when it starts (or joins)."""

    name = "xlive-frame-buffers"

    def setup(self, worker) -> None:
        keep_frame_buffers()


class BacklogAdaptive(Adaptive):
    """dask's adaptive scaling, with a target that also counts the live loop's backlog.

    dask sizes a cluster from the tasks its scheduler holds; the live loop keeps only about two
    blocks per worker thread in flight and the rest of its backlog in its own queue. The target
    here is the larger of dask's and the threads the frames need: the arrival rate times the
    compute time per frame (with 25 % headroom), plus what it takes to work off the queue within
    ``target_duration``. dask applies ``minimum``/``maximum`` and its usual scale-down delay.
    """

    def __init__(
        self,
        *args,
        demand: Callable[[], float | None] | None = None,
        threads_per_worker: int = 1,
        **kw,
    ):
        super().__init__(*args, **kw)
        self.demand = demand
        self.threads_per_worker = max(1, threads_per_worker)

    async def target(self):
        target = await super().target()
        threads = self.demand() if self.demand else None
        if threads is not None:
            target = max(target, math.ceil(threads / self.threads_per_worker))
        return target
