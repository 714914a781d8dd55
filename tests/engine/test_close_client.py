"""Closing a local client waits for the tasks still running in its worker threads: a process
must not reach the interpreter's shutdown while a daemon thread sits in a compiled kernel."""

from __future__ import annotations

import threading
import time

from numba import njit

from xlive.engine.cluster import close_client, default_client


@njit(nogil=True, cache=False)
def _spin(n: int) -> float:
    s = 0.0
    for i in range(n):
        s += (i % 7) * 1e-9
    return s


def _busy(seconds: float) -> float:
    t_end = time.monotonic() + seconds
    s = 0.0
    while time.monotonic() < t_end:
        s += _spin(2_000_000)  # the GIL is dropped inside, as in the analysis kernels
    return s


def _dask_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "Dask-Default-Threads" in t.name]


def test_close_client_waits_for_running_tasks():
    _spin(10)
    before = set(_dask_threads())
    client = default_client(2)
    futures = [client.submit(_busy, 1.5, pure=False) for _ in range(2)]
    t_end = time.monotonic() + 30
    while len(set(_dask_threads()) - before) < 2:  # both tasks started
        assert time.monotonic() < t_end, "the tasks did not start"
        time.sleep(0.05)
    time.sleep(0.3)
    client.cancel(futures)
    close_client(client)
    alive = [t for t in _dask_threads() if t not in before and t.is_alive()]
    assert alive == []
