"""Set-up of every dask worker that analyses frames: keep freed frame buffers for reuse.

A detector frame is a large allocation (18 MB for an EIGER 4M frame in 32 bits), made and freed
several times per frame (decompression, the frame array, temporaries). glibc serves allocations
above its mmap threshold with a fresh ``mmap``: every page is faulted in and zeroed by the
kernel, then unmapped at ``free``. By default glibc raises that threshold after the first large
free, so a long-running process soon reuses heap memory; but dask.distributed starts worker
processes with ``MALLOC_TRIM_THRESHOLD_=65536`` (to hand memory back to the OS), which pins the
threshold at 128 kB. On this project's 2-core machine that made ``analyze_block`` on EIGER 4M
frames cost 35.7 instead of 23.7 ms per frame, mostly kernel time, which also loads the memory
bus that two workers share.

:class:`FrameBuffers` is a dask ``WorkerPlugin``: registered with a client, it runs
:func:`keep_frame_buffers` on every worker, present and future, whatever started them
(``LocalCluster``, ``--scheduler``, dask-jobqueue). Freed memory then stays with the worker
process (up to ``trim_threshold`` beyond what it uses) instead of returning to the OS. Frames
larger than glibc's maximum mmap threshold (32 MB: EIGER 16M) are still mapped each time.
Without glibc (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import logging

from distributed import WorkerPlugin

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
        mallopt(M_TRIM_THRESHOLD, trim_threshold))
    if not ok:
        log.info("mallopt refused the frame-buffer settings; large frames are mmapped each time")
    return ok


class FrameBuffers(WorkerPlugin):
    """Runs :func:`keep_frame_buffers` on each worker when it starts (or joins)."""

    name = "xlive-frame-buffers"

    def setup(self, worker) -> None:
        keep_frame_buffers()
