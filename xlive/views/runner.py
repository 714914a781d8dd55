"""Drive a LiveSession's live loop in a background thread, politely.

``LiveSession.start()`` steps the loop without pause when nothing is in flight and stops on
the first error. Views must keep showing a run whose next frame is late, so this runner sleeps
one poll interval when a step found nothing to do, and treats a dask wait that timed out (a
block that takes longer than the poll interval, e.g. while numba compiles) as "nothing yet".
Its first step analyses the run's first block in its own thread
(:meth:`~xlive.engine.live.LiveProcessor.first_block_here`): the dask cluster starts after.
"""

from __future__ import annotations

import threading
import time

#: frames of the run's first block, analysed in the loop's thread: the first frame alone
#: (the others follow through the dask cluster)
FIRST_BLOCK = 1


class SessionRunner:
    """Step ``session`` in a daemon thread until :meth:`stop`.

    Parameters
    ----------
    session
        A :class:`~xlive.engine.session.LiveSession`.
    after_first
        Called once the run's first block is stored (analysed in the loop's thread before
        the dask cluster starts), before the next step starts the cluster.
    """

    def __init__(self, session, *, after_first=None):
        from ._history import history_for

        self.session = session
        history_for(session)  # the views' per-frame buffers see every frame from the start
        from .correlation import correlation_for

        correlation_for(session)
        #: called (in the loop's thread) once the run's first block is stored, before the
        #: dask cluster starts: e.g. to let the pages send that frame to their browsers first
        self.after_first = after_first
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.steps = 0

    def start(self) -> SessionRunner:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="xlive-views-live", daemon=True)
            self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        s = self.session
        proc = s.processor
        last_flags = 0.0
        first = True
        while not self._stop.is_set():
            try:
                # the run's first frame is analysed in this thread, before the dask cluster
                # starts: the page shows it ~0.5-1 s of CPU sooner
                stored = proc.first_block_here(FIRST_BLOCK) if first else 0
                first = False
                if stored and self.after_first is not None:
                    self.after_first()
                stored = stored or proc.step()
            except TimeoutError:  # dask's wait timed out: the block is still running
                stored = 0
            except Exception as e:  # shown by the status line; the loop stops
                s.error = e
                return
            self.steps += 1
            if time.time() - last_flags > 0.5:
                s.update_flags()
                last_flags = time.time()
            if not stored and proc.idle:
                self._stop.wait(proc.params.poll_interval)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
