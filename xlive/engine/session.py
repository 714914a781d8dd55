"""LiveSession: one monitored run — source, live loop, aggregates and flags — in a thread.

The notebook ``Monitor``, the ``xlive serve`` page and ``xlive demo`` all drive a LiveSession;
views read its state under ``session.lock`` and never touch dask or the source themselves.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..aggregate.flags import Flag, FlagThresholds, evaluate, status
from ..aggregate.running import AggregateParams, RunAggregates
from .live import LiveParams, LiveProcessor


class LiveSession:
    """Monitor a run (growing or finished).

    Parameters
    ----------
    target
        A Source or anything :func:`xlive.open_source` opens.
    features
        Feature store path (default: a temporary folder).
    analyzers
        Analyzer objects (default: built from the geometry and ``analyzer_params``).
    client
        A dask.distributed Client (default: a local one, closed with the session).

    Examples
    --------
    >>> s = LiveSession("data-samples/lysozyme-eiger500k")   # doctest: +SKIP
    >>> s.run_until_idle(); s.aggregates.hit_rate              # doctest: +SKIP
    """

    def __init__(self, target, features: str | Path | None = None, *, analyzers=None,
                 client=None, params: LiveParams | None = None,
                 thresholds: FlagThresholds | None = None,
                 aggregate_params: AggregateParams | None = None,
                 analyzer_params: dict | None = None):
        from ..sources import Source, open_source

        self._own_source = not isinstance(target, Source)
        self.source = target if isinstance(target, Source) else open_source(target)
        self.source.refresh()
        self.analyzer_params = dict(analyzer_params or {})
        if analyzers is None:  # built at the first frame, with the geometry the run has then
            from functools import partial

            from ..analyzers import default_analyzers

            analyzers = partial(default_analyzers, **self.analyzer_params)
        self.features = Path(features) if features else Path(
            tempfile.mkdtemp(prefix="xlive-features-")) / "features.zarr"
        self.lock = threading.RLock()
        self.aggregates = RunAggregates(
            aggregate_params, geometry=self.source.geometry if self.source.n_frames else None)
        self.thresholds = thresholds or FlagThresholds()
        self.flags: list[Flag] = []
        #: index of the newest hit stored (None until one is found)
        self.latest_hit: int | None = None
        #: peaks of recent hits: frame index -> (x, y) arrays
        self.hit_peaks: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.listeners: list[Callable[[dict, dict], None]] = []
        self.processor = LiveProcessor(self.source, self.features, analyzers=analyzers,
                                       client=client, params=params,
                                       listeners=[self._on_block])
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_flags = 0.0
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ updates
    def _on_block(self, result: dict, meta: dict) -> None:
        with self.lock:
            if self.aggregates.geometry is None:
                self.aggregates.geometry = self.source.geometry
            self.aggregates.update(result, meta)
            hits = np.asarray(result.get("is_hit", ()), bool) & ~np.asarray(result["bad"], bool)
            idx = np.asarray(result["frame_index"])
            for k in np.flatnonzero(hits):
                i = int(idx[k])
                if self.latest_hit is None or i > self.latest_hit:
                    self.latest_hit = i
                if "peak_x" in result:
                    x, y = result["peak_x"][k], result["peak_y"][k]
                    ok = np.isfinite(x)
                    self.hit_peaks[i] = (x[ok], y[ok])
            while len(self.hit_peaks) > 500:
                self.hit_peaks.pop(next(iter(self.hit_peaks)))
            if time.time() - self._last_flags > 0.5:
                self.update_flags()
            for f in self.listeners:
                f(result, meta)

    def update_flags(self) -> list[Flag]:
        with self.lock:
            self.flags = evaluate(self.aggregates, self.thresholds)
            self._last_flags = time.time()
            return self.flags

    @property
    def status(self) -> str:
        """``green``, ``amber`` or ``red``."""
        return status(self.flags)

    # ------------------------------------------------------------------ running
    def step(self) -> int:
        return self.processor.step()

    def run_until_idle(self, idle: float = 0.0) -> None:
        """Process in this thread until the run stops growing for ``idle`` seconds."""
        self.processor.run(until_idle=idle)
        self.update_flags()

    def start(self) -> LiveSession:
        """Run the live loop in a background thread until :meth:`stop`."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="xlive-live", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                self.processor.step()
        except BaseException as e:  # shown by the views; the session stops
            self.error = e

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def close(self) -> None:
        self.stop()
        self.processor.close()
        if self._own_source:
            self.source.close()

    def __enter__(self) -> LiveSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers for views
    def read_frame(self, index: int) -> np.ndarray:
        return self.source.read_frame(index)

    @property
    def lag(self) -> float:
        return self.processor.stats.lag_percentile(95)

    @property
    def throughput(self) -> float:
        return self.processor.stats.throughput()
