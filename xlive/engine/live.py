"""The live loop: poll the source, schedule new frames on dask, store features, fan out.

Each ``step()`` refreshes the source, queues the new frames, submits blocks of frames to the
dask client (at most ``max_in_flight`` blocks at once), and stores every finished block
(features first, then status), then hands it to the listeners (aggregators, flags, views).
When the backlog would push the lag past ``latency_budget`` it samples every k-th frame and
marks the others skipped, so ``fill_in`` (``xlive process --fill-in``) can compute them later.
Lag is measured per frame from when the frame was written (when a poll first saw it complete,
so up to one poll interval late) to the moment its features are stored. The frame's age (from
its detector timestamp, when that is a wall-clock time) is kept too: it adds the time the
detector and file writer took.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import pickle
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..aggregate.reducers import merge_partials
from ..aggregate.ring import RingSeries
from ..conventions import TIMESTAMP
from ..errors import ConfigError
from ..validate import check_fields
from .backlog import fixed_step, sample_backlog
from .block import Block, concat_blocks
from .cf import to_seconds
from .cluster import close_client, default_client  # noqa: F401  (default_client: also from here)
from .features import analyze_block, coord_parts, feature_specs, release_partials
from .store import BAD, DONE, META_FIELDS, SKIPPED, FeatureStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class LiveParams:
    """How the live loop paces itself."""

    #: seconds between polls of the source
    poll_interval: float = 0.25
    #: lag (s) the loop aims to stay under by sampling
    latency_budget: float = 5.0
    #: frames per dask task when the loop keeps up (results come back soon)
    block: int = 4
    #: largest block: with a backlog, the queue is spread over the task slots in blocks of up
    #: to this many frames (fewer tasks, transfers and store writes per frame)
    max_block: int = 32
    #: fraction of frames to compute (None: all, sampling only when behind)
    sample: float | None = None
    #: blocks submitted at once (None: 2 per worker thread)
    max_in_flight: int | None = None
    #: allow sampling when behind (off: compute every frame however late)
    adaptive: bool = True
    #: seconds between store writes while frames keep coming: finished blocks wait and are
    #: written together (a write touches every feature array; written straight to the chunk
    #: files it costs a few ms, bench/store_write.py). Once a poll finds no new frame, they
    #: are written at once. 0.25 s against 0.5: EIGER 4M replayed at 100 Hz, p95 lag 0.73 s
    #: against 1.02 for +0.4 ms of CPU per frame (bench/live_lag.py --replay --rate 100)
    store_interval: float = 0.25
    #: workers hold the reducers' partials (binned projections: megabytes per block) and hand
    #: them over at most this often; the rest when the run ends or the processor closes
    partials_interval: float = 2.0

    def __post_init__(self):
        check_fields(
            self,
            "live",
            error=ConfigError,
            ranges={
                "poll_interval": (0.001, 3600),
                "latency_budget": (0.01, None),
                "block": (1, None),
                "max_block": (1, None),
                "sample": (1e-09, 1),
                "max_in_flight": (1, None),
                "store_interval": (0, 3600),
                "partials_interval": (0, 3600),
            },
        )


@dataclass
class LiveStats:
    frames_stored: int = 0
    frames_skipped: int = 0
    #: seconds from frame written (first seen complete) to features stored (newest 100,000)
    lags: RingSeries = field(default_factory=lambda: RingSeries(100_000))
    #: seconds from the frame's detector timestamp to features stored
    ages: RingSeries = field(default_factory=lambda: RingSeries(100_000))
    started: float = field(default_factory=time.time)
    stored_times: collections.deque = field(default_factory=lambda: collections.deque(maxlen=4096))
    sample_step: int = 1

    def throughput(self, window: float = 10.0) -> float:
        """Frames stored per second over the last ``window`` seconds."""
        now = time.time()
        recent = [(t, k) for t, k in self.stored_times if now - t <= window]
        if not recent:
            return 0.0
        span = max(now - min(t for t, _ in recent), 1e-3)
        return sum(k for _, k in recent) / span

    def lag_percentile(self, p: float = 95.0) -> float:
        return float(np.percentile(np.asarray(self.lags), p)) if self.lags else float("nan")


class LiveProcessor:
    """Compute features of a (possibly growing) run into a FeatureStore, resumably.

    Parameters
    ----------
    source
        An opened :class:`~xlive.sources.Source`.
    store
        Path of the feature store (created, or resumed when it exists).
    analyzers
        Analyzer objects (default: built from the source geometry).
    client
        A ``dask.distributed.Client`` (default: a local one, closed with the processor).
    listeners
        Callables ``f(block, meta)`` called with every stored :class:`~xlive.engine.block.Block`
        and its per-frame metadata (aggregators, views).
    config
        The run configuration (:class:`~xlive.config.RunConfig`), stored with the features;
        it gives the analyzers when ``analyzers`` is None.
    history_listeners
        Listeners that also want the frames a resumed store already holds: at the first step
        they get those frames in blocks (no partial aggregates), then every new block.
    attrs
        More provenance to record in a new store (e.g. the geometry options).
    """

    def __init__(
        self,
        source,
        store,
        *,
        analyzers=None,
        client=None,
        params: LiveParams | None = None,
        listeners: list[Callable[[dict, dict], None]] | None = None,
        frames: np.ndarray | None = None,
        reducers=None,
        config=None,
        history_listeners: list[Callable[[dict, dict], None]] | None = None,
        attrs: dict | None = None,
    ):
        self.source = source
        self.config = config
        self.params = params or (config.live if config is not None else LiveParams())
        #: analyzers: a list, or None / a callable ``f(geometry)`` to build them once the run
        #: has frames (a run opened before its first frame has no final geometry yet)
        self._analyzers_arg = analyzers
        self.analyzers: list | None = None
        #: the analyzers' declared outputs (empty until the analyzers are built)
        self.specs: list = []
        #: reducers (None: the defaults, built with the analyzers)
        self.reducers = None if reducers is None else list(reducers)
        self._store_arg = store
        self.store: FeatureStore | None = store if isinstance(store, FeatureStore) else None
        self._own_client = client is None
        #: the dask client; an own one starts at its first use (see :meth:`first_block_here`)
        self._client = client
        self._client_lock = threading.Lock()
        self.history_listeners = list(history_listeners or [])
        self.listeners = [*self.history_listeners, *(listeners or [])]
        self._attrs = dict(attrs or {})
        self._restore_pending = False
        self._stepping = False
        self.stats = LiveStats()
        self._only = None if frames is None else set(int(i) for i in frames)
        self._queue: collections.deque[int] = collections.deque()
        self._in_flight: dict = {}
        #: blocks gathered from the workers, not yet stored
        self._unstored: list[Block] = []
        self._nthreads: tuple[float, int] | None = None
        self._workers_seen: tuple[float, int] | None = None
        self._last_poll = -math.inf
        self.last_refresh = -math.inf
        #: key under which workers hold this processor's partial aggregates
        self._hold_key = f"xlive-partials-{uuid.uuid4().hex}"
        self._last_store = 0.0
        #: whether the last poll found new frames (finished blocks then wait for store_interval)
        self._arriving = False
        #: frames skipped by sampling, not yet marked so in the store (see _skip)
        self._skipped: list[int] = []
        self._seen = 0
        #: (time, frames) of each poll that found new frames: the arrival rate
        self._arrivals: collections.deque = collections.deque(maxlen=256)
        self._first_seen: dict[int, float] = {}
        self._done = FrameSet()
        self._reader_f = None
        #: the reader as last shipped to the workers (pickled) and when (see _reship_reader)
        self._reader_state: bytes | None = None
        self._reader_sent = -math.inf
        self._compare_reader = True
        self._analyzers_f = None
        self._reducers_f = None
        self._pending_analyzers = None
        self._meta_cache: dict[str, np.ndarray] = {}
        #: frames found unreadable (stored as bad), and the faults last written to the store
        self._bad: set[int] = set()
        self._faults: dict | None = None
        self._last_faults = -math.inf
        self._last_trim = time.monotonic()
        self._ready = False
        source.refresh()
        self._ensure_ready()

    @property
    def client(self):
        """The dask client (an own local one is started here at the first use)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = default_client()
        return self._client

    def first_block_here(self, frames: int | None = None) -> int:
        """Analyse and store the run's first block in this thread, before any own dask
        client is started; returns the frames stored (0 when there is nothing to do here:
        a client is there, frames were stored already, the run has none yet). ``frames``:
        the block's size (default ``params.block``; ``xlive serve`` takes 1: the analyzers'
        first calls cost most, then each frame of eiger500k ~0.04 s of CPU more).

        For a quick start (``xlive serve``): the local cluster's start, the analyzers'
        shipping and warm-up cost about as much CPU as the first block itself, and are left
        to the next step. The block's partial aggregates go with it (not held), like a
        hand-over, so the first frame's views are complete.
        """
        busy = self._in_flight or self._unstored or self._restore_pending
        if self._client is not None or busy or self.stats.frames_stored:
            return 0  # (a cluster is there, or this is not the start)
        self._poll()
        if not self._queue or not self._ready:
            return 0
        size = self.params.block if frames is None else max(int(frames), 1)
        idx = [self._queue.popleft() for _ in range(min(size, len(self._queue)))]
        if self.reducers is None:
            from ..aggregate.reducers import default_reducers

            self.reducers = default_reducers(self.source.geometry)
        self._unstored.append(
            analyze_block(self.source.reader, self.analyzers, np.array(idx), self.reducers)
        )
        return self._store_unstored()

    def _ensure_ready(self) -> bool:
        """Build analyzers and open the store once the run has frames (or analyzers given)."""
        if self._ready:
            return True
        have_frames = self.source.n_frames > 0
        if self.analyzers is None:
            arg = self._analyzers_arg
            if isinstance(arg, (list, tuple)):
                self.analyzers = list(arg)
            elif not have_frames:
                return False
            elif arg is None and self.config is not None:
                self.analyzers = self.config.build_analyzers(self.source.geometry)
            elif arg is None:
                from ..analyzers import default_analyzers

                self.analyzers = default_analyzers(self.source.geometry)
            else:
                self.analyzers = list(arg(self.source.geometry))
            self.specs = feature_specs(self.analyzers)
        if self.store is None:
            from .. import __version__

            # provenance: which run, which geometry, which settings, which xlive
            attrs = {
                "source": source_label(self.source),
                "geometry": self.source.geometry.to_dict() if have_frames else None,
                "xlive_version": __version__,
                **self._attrs,
            }
            if self.config is not None:
                attrs["config"] = self.config.to_dict()
            for a in self.analyzers:  # e.g. the indexer's given cell
                attrs.update(getattr(a, "store_attrs", dict)())
            self.store = FeatureStore.open_or_create(
                self._store_arg,
                specs=feature_specs(self.analyzers),
                coords=coord_parts(self.analyzers),
                attrs=attrs,
            )
        status = self.store.status()
        self._done = FrameSet(np.flatnonzero((status == DONE) | (status == BAD)))
        self._bad = set(np.flatnonzero(status == BAD).tolist())
        self._restore_pending = bool(self.history_listeners) and bool(np.any(status == DONE))
        self._ready = True
        return True

    def _restore_history(self) -> None:
        """Hand the frames a resumed store already holds to the history listeners."""
        from ..conventions import FRAME
        from .block import Block

        self._restore_pending = False
        ds = self.store.to_dataset()
        names = [k for k in ds.data_vars if ds[k].dims[0] == FRAME]
        meta_names = [k for k in ds.coords if k in META_FIELDS]
        for s in range(0, ds.sizes[FRAME], 256):
            sub = ds.isel({FRAME: slice(s, s + 256)}).compute()
            block = Block(
                sub[FRAME].values,
                np.zeros(sub.sizes[FRAME], bool),
                {k: sub[k].values for k in names},
            )
            # listeners take metadata as the source gives it (timestamps in epoch seconds)
            meta = {
                k: to_seconds(sub[k].values) if k == TIMESTAMP else sub[k].values
                for k in meta_names
            }
            for f in self.history_listeners:
                f(block, meta)

    # ------------------------------------------------------------------ scheduling
    def _futures_setup(self):
        if self._analyzers_f is None and self.source.n_frames:
            reader = self.source.reader
            if self.reducers is None:
                from ..aggregate.reducers import default_reducers

                self.reducers = default_reducers(self.source.geometry)
            # every worker (also those joining later) keeps freed frame buffers for reuse
            from .cluster import FrameBuffers

            self.client.register_plugin(FrameBuffers(), name=FrameBuffers.name)
            self._analyzers_f = self.client.scatter(self.analyzers, broadcast=True, hash=False)
            self._reducers_f = (
                self.client.scatter(self.reducers, broadcast=True, hash=False)
                if self.reducers
                else ()
            )
            # on every worker, run its own copy once before the first frames wait for it
            # (numba loads its kernels; unpickled geometries recompute their maps)
            warm = [
                self.client.submit(
                    warm_up,
                    self._analyzers_f,
                    reader.shape,
                    reader.dtype,
                    self._reducers_f,
                    workers=[w],
                    pure=False,
                )
                for w in self.client.scheduler_info()["workers"]
            ]
            self.client.gather(warm)
        if self._reader_f is None and self.source.n_frames:
            # the reader learns about new data files/segments in the driver: ship it again
            self._reader_f = self.client.scatter(self.source.reader, broadcast=True, hash=False)

    @property
    def _threads(self) -> int:
        """Worker threads of the cluster, asked again every few seconds (workers may join)."""
        now = time.monotonic()
        if self._nthreads is None or now - self._nthreads[0] > 5.0:
            try:
                n = max(1, sum(self.client.nthreads().values()))
            except Exception:
                n = os.cpu_count() or 1
            self._nthreads = (now, n)
        return self._nthreads[1]

    def _has_workers(self) -> bool:
        """Whether any worker is connected (asked every 0.5 s while there is none, else 5 s)."""
        now = time.monotonic()
        seen = self._workers_seen
        if seen is None or now - seen[0] > (5.0 if seen[1] else 0.5):
            try:
                n = len(self.client.nthreads())
            except Exception:
                n = 1
            self._workers_seen = (now, n)
            if n:  # once there are workers, ask only when the thread count is asked again
                self._nthreads = None
        return self._workers_seen[1] > 0

    def _poll(self) -> None:
        # a step follows each finished block: while busy, look at the source once per poll
        # interval only (each look opens the run's metadata)
        now = time.monotonic()
        if not self.idle and now - self._last_poll < self.params.poll_interval:
            return
        self._last_poll = now
        n = self.source.refresh()
        #: when the source was last counted (monotonic clock)
        self.last_refresh = time.monotonic()
        self._arriving = n > self._seen
        if n <= self._seen or not self._ensure_ready():
            return
        self.store.see(n)
        self._reship_reader()
        now = time.time()
        self._arrivals.append((now, n - self._seen))
        step = fixed_step(self.params.sample)
        skipped = []
        for i in range(self._seen, n):
            if i in self._done or (self._only is not None and i not in self._only):
                continue
            if step > 1 and i % step:
                skipped.append(i)
            else:
                self._queue.append(i)
                self._first_seen[i] = now
        self._seen = n
        if skipped:
            self._skip(skipped)

    def _reship_reader(self) -> None:
        """Have the workers get the reader as it is now when it changed (new files,
        segments, counts), or every :data:`RESHIP_INTERVAL` seconds: a broadcast at every
        poll that finds new frames cost the event loop ~1 ms of CPU each. A reader that
        takes long to pickle (a list of a million files) is shipped every time, as before."""
        state = None
        if self._compare_reader:
            t0 = time.perf_counter()
            try:
                state = pickle.dumps(self.source.reader, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # an unpicklable reader: ship it every time, as before
                self._compare_reader = False
            if time.perf_counter() - t0 > 0.002:
                self._compare_reader = False
        now = time.monotonic()
        if (
            state is None
            or state != self._reader_state
            or now - self._reader_sent > RESHIP_INTERVAL
        ):
            self._reader_f = None
            self._reader_state, self._reader_sent = state, now

    def _adapt(self) -> None:
        """Sample the queue when the backlog would exceed the latency budget (see
        :func:`~xlive.engine.backlog.sample_backlog`)."""
        p = self.params
        if not p.adaptive or len(self._queue) < 2 * p.block:
            self.stats.sample_step = 1  # not behind (any more): every frame queued is computed
            return  # the usual case, decided without asking for the rate
        decision = sample_backlog(
            list(self._queue),
            in_flight=sum(len(idx) for idx in self._in_flight.values()),
            rate=self.stats.throughput(),
            frames_stored=self.stats.frames_stored,
            block=p.block,
            latency_budget=p.latency_budget,
            adaptive=p.adaptive,
        )
        if decision is None:
            return
        self.stats.sample_step = decision.step
        if not decision.skip:
            return
        skip = decision.skip
        self._queue = collections.deque(decision.keep)
        for i in skip:
            self._first_seen.pop(i, None)
        if skip:
            self._skip(skip)

    def _skip(self, frames: list[int]) -> None:
        """Frames left out by sampling: marked skipped in the store with the next write (in
        its status write), or once ``store_interval`` has passed (:meth:`_mark_skipped`):
        a status write at every poll cost as much CPU as a store write."""
        self._skipped.extend(int(i) for i in frames)
        self.stats.frames_skipped += len(frames)

    def _mark_skipped(self, force: bool = False) -> None:
        """Write the skipped frames waiting for a store write, when one is due (or ``force``)."""
        if self._skipped and (force or self._store_wait() <= 0):
            skipped, self._skipped = np.array(self._skipped, np.int64), []
            self.store.mark_skipped(np.sort(skipped))

    def _submit(self) -> None:
        if self._queue and not self._has_workers():
            return  # e.g. batch jobs still queued: ship nothing until a worker is there
        try:
            self._futures_setup()
        except (OSError, CancelledError, TimeoutError) as exc:
            # a worker left while the reader and analyzers were shipped (a batch job
            # cancelled): ship them again at the next step, to the workers there are then
            log.info(
                "shipping to the workers failed (%s: %s); trying again", type(exc).__name__, exc
            )
            self._analyzers_f = self._reducers_f = self._reader_f = None
            self._workers_seen = None
            return
        limit = self.params.max_in_flight or 2 * self._threads
        free = limit - len(self._in_flight)
        if not self._queue or free <= 0:
            return
        # the queue shared over one task per worker thread (not per task slot): each task
        # and the step that gathers it cost several ms of CPU whatever the block's size
        # (dask's scheduler, worker and client all run here): keeping up at 100 Hz, 3.6-3.8
        # instead of 4.2 ms of CPU per frame, 55 instead of 230 tasks (bench/live_tasks.py,
        # eiger500k, radial profile only). A backlog still fills every slot.
        size = self._block_size(min(free, self._threads))
        while self._queue and len(self._in_flight) < limit:
            idx = [self._queue.popleft() for _ in range(min(size, len(self._queue)))]
            fut = self.client.submit(
                analyze_block,
                self._reader_f,
                self._analyzers_f,
                np.array(idx),
                self._reducers_f,
                (self._hold_key, self.params.partials_interval),
                pure=False,
            )
            self._in_flight[fut] = idx

    def _block_size(self, tasks: int) -> int:
        """Frames per task: the queue shared over ``tasks`` tasks, at least ``block`` and at
        most ``max_block`` (never more than the queue holds). Blocks shrink as a backlog
        drains, so no worker is left with a long last block while others idle."""
        p = self.params
        size = min(max(p.block, -(-len(self._queue) // max(tasks, 1))), max(p.max_block, p.block))
        return min(size, len(self._queue))

    def _collect(self, wait: float = 0.0, flush: bool = False) -> int:
        """Gather finished blocks; store them when ``store_interval`` has passed since the
        last write, when nothing else is computing, or with ``flush``."""
        from dask.distributed import wait as dwait

        if wait > 0 and self._in_flight:
            try:
                dwait(list(self._in_flight), timeout=wait, return_when="FIRST_COMPLETED")
            except TimeoutError:
                pass  # nothing finished yet: poll again
            except CancelledError:
                pass  # blocks lost with a worker: queued again below
        finished = [f for f in self._in_flight if f.done()]
        while True:
            lost = [f for f in finished if f.cancelled()]
            if lost:
                self._requeue(lost)
                finished = [f for f in finished if not f.cancelled()]
            if not finished:
                break
            try:  # one round trip through the client's event loop for all of them
                self._unstored.extend(self.client.gather(finished))
                break
            except CancelledError:
                # a block finished on a worker that left before its result came here, and
                # the scattered reader it needs went with it: dask cancels it during gather
                if not any(f.cancelled() for f in finished):
                    raise
        for fut in finished:
            self._in_flight.pop(fut)
        if flush:
            return self._store_unstored(self._release_partials())
        if self._unstored and (self._store_wait() <= 0 or not (self._in_flight or self._arriving)):
            return self._store_unstored()
        return 0

    def _store_wait(self) -> float:
        """Seconds until finished blocks are due to be stored (``store_interval`` after the
        last write). While frames keep coming they wait that long even when nothing else
        is computing: at 100 Hz the tasks of each poll finish before the next poll, and a
        write at each poll cost twice the CPU of one every ``store_interval``."""
        return self.params.store_interval - (time.monotonic() - self._last_store)

    def _requeue(self, lost: list) -> None:
        """Queue again the frames of blocks cancelled because a worker left with the data
        they needed (the only worker holding the scattered reader and analyzers, e.g. a
        batch job cancelled); the reader and analyzers are shipped again."""
        for fut in lost:
            self._queue.extendleft(reversed(self._in_flight.pop(fut)))
        self._analyzers_f = self._reducers_f = self._reader_f = None
        self._workers_seen = None  # ask again before shipping them
        log.info("%d blocks lost with a worker; computing them again", len(lost))

    def _release_partials(self) -> dict:
        """The partial aggregates the workers still hold for this processor."""
        if not self.reducers:
            return {}
        held = (  # (no client started yet: no worker holds any)
            []
            if self._client is None
            else list(
                self._client.run(release_partials, self._hold_key, on_error="ignore").values()
            )
        )
        # a worker that ran in this process and has left (the stand-in while batch jobs
        # waited, see xlive.engine.cluster) leaves its partials here
        held.append(release_partials(self._hold_key))
        return merge_partials(held)

    def _store_unstored(self, partials: dict | None = None) -> int:
        """One store write for every block finished since the last, then the listeners
        (``partials``: more partial aggregates to hand them, even with no frame to store)."""
        if not self._unstored and not partials:
            return 0
        block = merge_results(self._unstored) if self._unstored else Block.empty(self.specs)
        if partials:
            block.partials = merge_partials([block.partials, partials])
        self._unstored = []
        self._last_store = time.monotonic()
        idx = block.frames
        meta = self._meta(idx) if idx.size else {}
        skipped, self._skipped = np.array(self._skipped, np.int64), []
        self.store.write(block, meta, skipped=np.sort(skipped))
        now = time.time()
        ts = meta.get(TIMESTAMP)
        self.stats.lags.extend([now - self._first_seen.pop(i, now) for i in idx.tolist()])
        if ts is not None:  # detector clocks may count from a series' start: epoch times only
            t = np.asarray(ts, float)
            self.stats.ages.extend(now - t[(t > EPOCH_2000) & (t <= now + 60)])
        self._done.update(idx)
        self.stats.frames_stored += len(idx)
        self.stats.stored_times.append((now, len(idx)))
        if idx.size:
            self._bad.update(idx[block.bad].tolist())
        self.update_faults(force=partials is not None)
        for f in self.listeners:
            f(block, meta)
        return len(idx)

    def faults(self) -> dict:
        """The run's faults now (see :mod:`xlive.aggregate.faults`): the source's own, plus the frames
        found unreadable, by file."""
        from ..aggregate.faults import run_faults

        return run_faults(self.source, sorted(self._bad))

    def update_faults(self, force: bool = False) -> dict | None:
        """Record the faults in the store's ``faults`` attribute (at most every 2 s)."""
        now = time.monotonic()
        if self.store is None or (not force and now - self._last_faults < 2.0):
            return self._faults
        self._last_faults = now
        faults = self.faults()
        if faults != self._faults:
            self.store.set_faults(faults)
            self._faults = faults
        return faults

    def _meta(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        meta = self._meta_cache
        if not meta or any(len(v) <= idx.max() for v in meta.values()):
            meta = self._meta_cache = self.source.metadata()
        return {k: np.asarray(v)[idx] for k, v in meta.items() if len(v) > idx.max()}

    # ------------------------------------------------------------------ public
    def prepare(self) -> bool:
        """Build analyzers and store, ship them to the workers and warm them up now (rather
        than in the first step); False while the run has no frame yet."""
        self.source.refresh()
        if not self._ensure_ready():
            return False
        self._futures_setup()
        return True

    def set_analyzers(self, analyzers, reducers=None) -> None:
        """Use other analyzers from the next block on (e.g. new spot-finder thresholds).

        They must produce the same feature names as the store holds; frames already stored
        keep the values computed with the old analyzers.
        """
        names = sorted(s.name for s in feature_specs(analyzers))
        if self.store is not None and names != sorted(self.store.specs):
            raise ConfigError(
                f"the new analyzers produce {names}, but the feature store holds "
                f"{sorted(self.store.specs)}"
            )
        # applied by the loop thread at its next step (this may be called from a UI thread)
        self._pending_analyzers = (list(analyzers), None if reducers is None else list(reducers))

    def step(self, wait: float | None = None) -> int:
        """One poll, schedule and collect; returns frames stored in this step."""
        # while a step moves frames between queue, tasks and store, "idle" is not to be
        # trusted by other threads (see caught_up)
        self._stepping = True
        try:
            return self._step(wait)
        finally:
            self._stepping = False

    def _step(self, wait: float | None) -> int:
        if self._restore_pending:
            self._restore_history()
        if self._pending_analyzers is not None:  # set_analyzers from another thread
            self.analyzers, reducers = self._pending_analyzers
            self.specs = feature_specs(self.analyzers)
            if reducers is not None:
                self.reducers = reducers
            self._pending_analyzers = None
            self._analyzers_f = self._reducers_f = None
        self._poll()
        self._adapt()
        self._submit()
        if not self._unstored:  # else they go with the blocks' write
            self._mark_skipped()
        if self.store is not None:  # readers see what is stored within a second, idle or not
            self.store.flush_if_due()
        now = time.monotonic()
        if now - self._last_trim > TRIM_INTERVAL:
            self._last_trim = now
            release_free_memory()
        wait = self.params.poll_interval if wait is None else wait
        if not self._in_flight and self._unstored:
            # finished blocks wait for their store write (see _collect): until it is due
            pause = min(wait, max(self._store_wait(), 0.0))
            if pause > 0:
                self._stepping = False
                time.sleep(pause)
                self._stepping = True
            return self._collect(0.0)
        if not self._in_flight and wait > 0:
            self._stepping = False
            time.sleep(wait)  # nothing to wait for but new frames
            return 0
        return self._collect(wait)

    @property
    def caught_up(self) -> bool:
        """Every frame the source had at the last poll is handled (stored, bad or skipped)."""
        return not self._stepping and self.idle and self._seen >= self.source.n_frames

    @property
    def frames_seen(self) -> int:
        """Frames of the run this processor has looked at (queued, computed or skipped)."""
        return self._seen

    @property
    def idle(self) -> bool:
        """Nothing queued, running or waiting to be stored."""
        return not self._queue and not self._in_flight and not self._unstored

    def run(
        self,
        *,
        until_idle: float | None = 0.0,
        stop=None,
        progress: Callable[[LiveProcessor], None] | None = None,
    ) -> LiveStats:
        """Loop until the run stops growing for ``until_idle`` seconds (None: forever)."""
        last_new = time.time()
        while stop is None or not stop.is_set():
            before = self._seen
            self.step()
            if progress:
                progress(self)
            if self._seen > before or not self.idle or self._before_run():
                last_new = time.time()
            elif until_idle is not None and time.time() - last_new >= until_idle:
                break
        self._collect(wait=0, flush=True)
        self._mark_skipped(force=True)
        self.update_faults(force=True)
        if self.store is not None:  # readers see every frame stored (not 1 s later)
            self.store.flush()
        return self.stats

    def _before_run(self) -> bool:
        """The run is not there yet, or says it goes on and has no frame yet: not idle (the
        source's timeout bounds a wait for a run that never appears)."""
        src = self.source
        return bool(getattr(src, "waiting_for", "")) or (not self._seen and src.finished is False)

    def backlog(self) -> int:
        """Frames queued or computing."""
        return len(self._queue) + sum(len(idx) for idx in self._in_flight.values())

    def arrival_rate(self, window: float = 10.0) -> float:
        """New frames per second seen over the last ``window`` seconds."""
        now = time.time()
        recent = [(t, k) for t, k in list(self._arrivals) if now - t <= window]
        if len(recent) < 2:
            return 0.0
        span = max(now - recent[0][0], 1e-3)
        return sum(k for _, k in recent[1:]) / span

    def pending(self) -> np.ndarray:
        """Frames seen but neither computed nor bad (skipped ones included)."""
        if self.store is None:
            return np.arange(self.source.n_frames)
        status = self.store.status()
        return np.flatnonzero((status != DONE) & (status != BAD))

    def close(self) -> None:
        """Store finished results, cancel unfinished work, release scattered data, close an
        own client."""
        if self.store is not None and (self._client is None or self._client.status == "running"):
            try:
                self._store_unstored(self._release_partials())
                self._mark_skipped(force=True)
                self.store.flush(exact=True)  # the store's arrays hold exactly the frames seen
            except OSError as exc:  # disk full / read-only: the caller reports the first error
                log.info("could not store the last results on close: %s", exc)
            except Exception as exc:  # closing after a failure: report, keep the first error
                log.warning("could not store the last results on close: %s", exc)
        if self._in_flight:
            self.client.cancel(list(self._in_flight))
            self._in_flight.clear()
        self._reader_f = self._analyzers_f = self._reducers_f = None
        if self._own_client and self._client is not None:
            close_client(self._client)

    def __enter__(self) -> LiveProcessor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


#: seconds after which the workers get the reader again even when it looks unchanged
RESHIP_INTERVAL = 5.0
#: seconds between returns of freed memory to the system (see release_free_memory)
TRIM_INTERVAL = 30.0
_LIBC: list = []


def release_free_memory() -> None:
    """Give memory freed by the frames' buffers back to the system (glibc ``malloc_trim``).

    The decoded frames, zarr's buffers and dask's messages come and go from several threads;
    glibc keeps what they free in per-thread arenas, so the resident size creeps up by ~1 MB
    per 1000 frames although nothing is held (bench/soak.py, ``--trim``). A no-op elsewhere.
    """
    if not _LIBC:
        try:
            import ctypes

            _LIBC.append(ctypes.CDLL("libc.so.6").malloc_trim)
        except (OSError, AttributeError):
            _LIBC.append(None)
    if _LIBC[0] is not None:
        _LIBC[0](0)


class FrameSet:
    """Frame indices as a growing boolean array: 1 byte a frame, where a Python set of ints
    costs ~60 (a 3-hour run at 100 Hz: 1 MB instead of 65 MB)."""

    def __init__(self, indices=()):
        self._a = np.zeros(1024, bool)
        self.update(indices)

    def update(self, indices) -> None:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size:
            need = int(idx.max()) + 1
            if need > self._a.size:
                self._a = np.concatenate(
                    [self._a, np.zeros(max(need, 2 * self._a.size) - self._a.size, bool)]
                )
            self._a[idx] = True

    def add(self, i: int) -> None:
        self.update((i,))

    def __contains__(self, i: int) -> bool:
        return 0 <= i < self._a.size and bool(self._a[i])

    def __len__(self) -> int:
        return int(np.count_nonzero(self._a))


#: timestamps before 2000-01-01 are not wall-clock times (a series-relative detector clock)
EPOCH_2000 = 946684800.0


def warm_up(analyzers, shape, dtype, reducers=()) -> None:
    """Run analyzers and reducers once on an empty frame and once on a frame of spots, and
    fold the reducers' partials: numba then loads (or compiles) every kernel a run uses.

    A blank frame alone leaves the spot paths (peak merging, neighbour distances, the lattice
    score) and the projections' fold to the first hit of the run: with a cold numba cache
    (the first run after the kernels changed) they then compiled inside the worker threads,
    ~30 s of CPU while frames arrived (EIGER 4M at 100 Hz: 135 of 3000 frames computed).
    Both frames go through writable and read-only (numba compiles each kind apart: the stream
    spool and Eiger files give read-only frames, see ``bslz4_decode``).
    """
    block = analyze_block(_WarmReader(shape, dtype), analyzers, np.arange(4), reducers)
    pickle.dumps(block.partials)  # pickling folds the projections' bands (as a hand-over does)
    from ..sources._bslz4 import bslz4_check, bslz4_encode  # the readers' check of each blob

    bslz4_check(bslz4_encode(np.zeros(8, np.uint16)), itemsize=2, n=8)


class _WarmReader:
    """Frame 0: zeros; frame 1: a flat background with a square grid of bright 3 x 3 spots,
    enough of them, near enough to each other, to be a hit with a lattice score; frames 2
    and 3: the same, read-only."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)

    def read_one(self, index: int) -> np.ndarray:
        frame = np.zeros(self.shape, self.dtype)
        if index >= 2:
            frame = self.read_one(index - 2)
            frame.setflags(write=False)
            return frame
        if index == 0:
            return frame
        frame[1::2, ::3] = 1  # a sparse background of single photons
        step = max(8, min(self.shape) // 24)
        for dy, dx, v in ((0, 0, 60), (-1, 0, 25), (1, 0, 25), (0, -1, 25), (0, 1, 25)):
            frame[step // 2 + dy :: step, step // 2 + dx :: step] = v
        frame[step // 2 + step // 3 :: step, step // 2 + step // 4 :: step] = 40
        return frame


def source_label(source) -> str:
    """Where a run comes from: an absolute path for files, the address for streams."""
    path = getattr(source, "path", None)
    if path is None:
        return ""
    text = str(path)
    if "://" in text:
        return text
    return str(Path(text).absolute())


def merge_results(parts: list[Block]) -> Block:
    """One block of several, sorted by frame index; partials added up."""
    return concat_blocks(parts, merge_partials)


def fill_in(source, store, **kw) -> LiveStats:
    """Compute the frames a store skipped or has not reached yet (no sampling)."""
    st = store if isinstance(store, FeatureStore) else FeatureStore.open(store, mode="r+")
    source.refresh()
    status = st.status()
    todo = np.flatnonzero((status == SKIPPED) | (status == 0))
    todo = np.concatenate([todo, np.arange(len(status), source.n_frames)])
    params = LiveParams(
        **{**kw.pop("params", LiveParams()).__dict__, "adaptive": False, "sample": None}
    )
    with LiveProcessor(source, st, params=params, frames=todo, **kw) as lp:
        return lp.run(until_idle=0.0)
