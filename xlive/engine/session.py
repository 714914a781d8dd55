"""LiveSession: one monitored run — source, live loop, aggregates and flags — in a thread.

The notebook ``Monitor``, the ``xlive serve`` page and ``xlive demo`` all drive a LiveSession
(through :class:`~xlive.views.runner.SessionRunner`, or by calling :meth:`LiveSession.step`);
views read its state under ``session.lock`` and never touch dask or the source themselves.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from ..aggregate.faults import merge_flags
from ..aggregate.flags import Flag, FlagThresholds, status
from ..aggregate.running import AggregateParams, RunAggregates
from ..aggregate.timeline import FlagTracker
from .live import LiveParams, LiveProcessor
from .run_clock import RunClock


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
    config
        A run configuration (:class:`~xlive.config.RunConfig` or a TOML file): geometry
        overrides, analyzers, live-loop settings, flag thresholds, aggregate windows. The
        keyword arguments below take precedence over it.
    cluster
        Workers on a batch cluster: ``"slurm"``, a dict of ``[cluster]`` keys or a
        :class:`~xlive.engine.cluster.ClusterParams` (default: the configuration's
        ``[cluster]`` table). Started here and stopped with the session; not with ``client``.
    store_attrs
        More provenance recorded in a new feature store (e.g. the geometry options).
    wait_timeout
        A target that does not exist yet is waited for (the session shows "waiting for
        RUN"); after this many seconds (None: never) the live loop stops with an error.

    Examples
    --------
    >>> s = LiveSession("data-samples/lysozyme-eiger500k")   # doctest: +SKIP
    >>> while s.step() or not s.processor.idle: pass          # doctest: +SKIP
    >>> s.aggregates.hit_rate                                 # doctest: +SKIP
    """

    def __init__(
        self,
        target,
        features: str | Path | None = None,
        *,
        analyzers=None,
        client=None,
        params: LiveParams | None = None,
        thresholds: FlagThresholds | None = None,
        aggregate_params: AggregateParams | None = None,
        analyzer_params: dict | None = None,
        config=None,
        cluster=None,
        store_attrs: dict | None = None,
        wait_timeout: float | None = None,
    ):
        from ..config import load_config
        from ..errors import ConfigError, SourceError
        from ..geometry.plan import GeometryPlan
        from ..sources import Source, open_source
        from ..sources.pending import PendingSource, target_exists
        from .cluster import ClusterWorkers, cluster_params

        self.config = load_config(config)
        self._own_source = not isinstance(target, Source)
        if isinstance(target, Source):
            self.source = target
        elif not target_exists(target):  # started before the run: wait for it
            self.source = PendingSource(target, timeout=wait_timeout)
        else:
            try:
                self.source = open_source(target)
            except SourceError:  # there, not readable yet (data being created): keep trying,
                # saying why on the status line
                self.source = PendingSource(target, timeout=wait_timeout)
        plan = GeometryPlan.from_options(table=self.config.geometry)
        if plan is not None and self.source.geometry_edit is None:
            # [geometry] applies when the geometry is first built (the first frame)
            self.source.geometry_edit = plan
            self.source._geometry = None
        self.source.refresh()
        #: when the run grew, and when it counts as finished
        self.clock = RunClock()
        self._marker_seen: float | None = None
        self._finished_frames: int | None = None  # source.n_frames when last found finished
        #: ``[analyzers.NAME]`` parameters (NAME -> parameter object) the analyzers are built with
        self.analyzer_params = {**self.config.analyzers, **(analyzer_params or {})}
        if analyzers is None:  # built at the first frame, with the geometry the run has then
            from ..analyzers import build_analyzers

            analyzers = partial(build_analyzers, params=self.analyzer_params)
        self.features = (
            Path(features)
            if features
            else Path(tempfile.mkdtemp(prefix="xlive-features-")) / "features.zarr"
        )
        self.lock = threading.RLock()
        self.aggregates = RunAggregates(
            aggregate_params or self.config.aggregate,
            geometry=self.source.geometry if self.source.n_frames else None,
        )
        #: flag rules along the run, their timeline (stored with the features)
        self.tracker = FlagTracker(
            self.aggregates, thresholds or self.config.flags, on_change=self._timeline_changed
        )
        self._timeline_dirty = False
        self.flags: list[Flag] = []
        #: index of the newest hit stored (None until one is found)
        self.latest_hit: int | None = None
        #: peaks of recent hits: frame index -> (x, y) arrays
        self.hit_peaks: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        #: orientation matrices (A = UB) of the lattices of recent indexed hits
        self.hit_lattices: dict[int, list[np.ndarray]] = {}
        #: called with every stored Block and its metadata, after the aggregates
        self.listeners: list[Callable] = []
        #: batch-cluster workers (:class:`~xlive.engine.cluster.ClusterWorkers`), or None
        self.cluster_workers = None
        cluster = (
            self.config.cluster if cluster is None else cluster_params(cluster, self.config.cluster)
        )
        if cluster.kind != "local" and client is None:
            self.cluster_workers = ClusterWorkers(cluster)
            client = self.cluster_workers.client
        elif cluster.kind != "local":
            raise ConfigError("give a LiveSession either a client or a cluster, not both")
        # a resumed store hands its frames to _on_block first: all history at once
        self.processor = LiveProcessor(
            self.source,
            self.features,
            analyzers=analyzers,
            client=client,
            params=params or self.config.live,
            history_listeners=[self._on_block],
            config=self.config,
            attrs=store_attrs,
        )
        if self.cluster_workers is not None:
            self.cluster_workers.attach(self.processor)
        self._last_flags = 0.0
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ updates
    def _on_block(self, block, meta: dict) -> None:
        with self.lock:
            if self.aggregates.geometry is None:
                self.aggregates.geometry = self.source.geometry
            self.aggregates.declare(self.processor.specs)
            self.tracker.update(block, meta)  # the aggregates, then the flag rules
            self.flags = merge_flags(self.tracker.flags, self.processor.update_faults())
            self._save_timeline()
            if "is_hit" not in block:
                hits = np.zeros(len(block), bool)
            else:
                hits = np.asarray(block["is_hit"], bool) & block.good
            idx = block.frames
            for k in np.flatnonzero(hits):
                i = int(idx[k])
                if self.latest_hit is None or i > self.latest_hit:
                    self.latest_hit = i
                if "peak_x" in block:
                    x, y = block["peak_x"][k], block["peak_y"][k]
                    ok = np.isfinite(x)
                    self.hit_peaks[i] = (x[ok], y[ok])
                if "orientation" in block and block["indexed"][k]:
                    self.hit_lattices[i] = [
                        np.asarray(a, float)
                        for a in block["orientation"][k, : int(block["n_lattices"][k])]
                    ]
            while len(self.hit_peaks) > 500:
                self.hit_peaks.pop(next(iter(self.hit_peaks)))
            while len(self.hit_lattices) > 500:
                self.hit_lattices.pop(next(iter(self.hit_lattices)))
            for f in self.listeners:
                f(block, meta)

    @property
    def thresholds(self) -> FlagThresholds:
        return self.tracker.thresholds

    @thresholds.setter
    def thresholds(self, value: FlagThresholds) -> None:
        self.tracker.thresholds = value

    @property
    def timeline(self):
        """The :class:`~xlive.aggregate.timeline.FlagTimeline` of the run so far."""
        return self.tracker.timeline

    def update_flags(self) -> list[Flag]:
        """Evaluate every rule now (the live loop evaluates them as blocks arrive)."""
        with self.lock:
            # the rules judge the run along its frames; faults (unreadable, dropped, refused)
            # the whole run
            self.flags = merge_flags(self.tracker.evaluate_all(), self.processor.update_faults())
            self._last_flags = time.time()
            return self.flags

    def _timeline_changed(self, tracker) -> None:
        self._timeline_dirty = True

    def _save_timeline(self) -> None:
        """Store the timeline with the features (only from the thread that writes the store)."""
        store = self.processor.store if hasattr(self, "processor") else None
        if self._timeline_dirty and store is not None:
            import dataclasses

            self._timeline_dirty = False
            store.set_flag_timeline(self.timeline.to_list(), dataclasses.asdict(self.thresholds))

    @property
    def status(self) -> str:
        """``green``, ``amber`` or ``red``."""
        return status(self.flags)

    # ------------------------------------------------------------------ running
    def step(self) -> int:
        """One step of the live loop (poll, schedule, store); frames stored."""
        return self.processor.step()

    def close(self) -> None:
        self.processor.close()
        with self.lock:
            self._save_timeline()
        if self.cluster_workers is not None:
            self.cluster_workers.close()
        if self._own_source:
            self.source.close()

    def __enter__(self) -> LiveSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ run state
    def run_state(self, now: float | None = None) -> str:
        """``"waiting"`` (no run or no frame yet), ``"live"`` or ``"finished"`` (the run's end
        marker, or an idle time learnt from its cadence, and every frame handled)."""
        n = self.source.n_frames
        self.clock.observe(n, now)
        if n == 0:
            self._finished_frames = None
            return "waiting"
        marker = getattr(self.source, "finished", None)
        fresh = True
        if marker:  # the frames written before the marker count only after a later poll
            if self._marker_seen is None:
                self._marker_seen = time.monotonic()
            fresh = self.processor.last_refresh > self._marker_seen
        caught_up = self.processor.caught_up or (
            # no frame since it was found finished: a poll the live loop is in the middle of
            # (its step's moments, see LiveProcessor.caught_up) does not make the run live again
            n == self._finished_frames and self.processor.idle
        )
        if fresh and caught_up and self.clock.is_over(marker, now):
            self._finished_frames = n
            return "finished"
        self._finished_frames = None
        return "live"

    def waiting_for(self) -> str:
        """What the session waits for, in words ("" when nothing)."""
        text = getattr(self.source, "waiting_for", "")
        if text:
            return text
        if self.source.n_frames == 0:
            label = getattr(self.source, "target", None) or getattr(self.source, "path", "")
            return f"waiting for the first frame of {label}"
        return ""

    # ------------------------------------------------------------------ helpers for views
    def read_frame(self, index: int) -> np.ndarray:
        return self.source.read_frame(index)

    @property
    def lag(self) -> float:
        return self.processor.stats.lag_percentile(95)

    @property
    def throughput(self) -> float:
        return self.processor.stats.throughput()
