"""Where the workers run, and how each worker is set up.

**Worker set-up**: keep freed frame buffers for reuse.

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

**Local clients**: :func:`default_client`, dask on this machine (threads, or processes).

**Workers on a batch cluster.** ``xlive process/serve --cluster slurm`` and
``Monitor(run, cluster="slurm")`` start a dask scheduler in this process and submit worker jobs
to SLURM through dask-jobqueue (the ``[cluster]`` table of the run configuration: queue, cores,
memory, walltime, jobs, adaptive minimum/maximum, extra ``#SBATCH`` directives). :class:`ClusterWorkers` adds what a live run needs on top:

- adaptive scaling (dask's :class:`~distributed.deploy.Adaptive`) whose target also counts the
  frames waiting in the live loop, which dask's scheduler never sees (the loop keeps only a few
  blocks in flight);
- a watchdog that replaces worker jobs that died (``scancel``, node failure, walltime): dask
  does not resubmit them by itself (dask/dask-jobqueue#611);
- a worker on this machine while no SLURM job runs (the queue is full, the partition is held),
  with a plain-language notice, retired once SLURM workers have joined;
- a one-line summary of the workers and their jobs for the status line and the dashboard.

``--scheduler ADDRESS`` (any running dask.distributed cluster) stays as it was.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ConfigError, XliveError

log = logging.getLogger(__name__)

#: the worker set-up and the classes built on dask.distributed's, in
#: :mod:`xlive.engine._dask_plugins`: importing distributed (~0.5 s) waits until a client is
#: started (``xlive serve`` shows the run's first frame before that, see
#: :meth:`xlive.engine.live.LiveProcessor.first_block_here`)
_DASK_CLASSES = ("FrameBuffers", "BacklogAdaptive", "keep_frame_buffers", "MIB")


def __getattr__(name: str):
    if name in _DASK_CLASSES:
        from . import _dask_plugins

        return getattr(_dask_plugins, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- local clients
def default_client(n_workers: int | None = None, processes: bool = False):
    """A local dask.distributed client sized to the machine (threads: the kernels drop the GIL)."""
    import dask
    from dask.distributed import Client, LocalCluster

    ncores = os.cpu_count() or 1
    # everything on 127.0.0.1: without addresses the scheduler's and workers' HTTP servers
    # listen on all interfaces (even with dashboard_address=None, which means ":8787")
    quiet = dict(
        dashboard_address="127.0.0.1:0",
        worker_dashboard_address="127.0.0.1:0",
        silence_logs=logging.WARNING,
    )
    quiet_dask_logs()
    # no dashboard, so nobody reads the workers' statistical profiles: their sampling thread
    # cost about 1 ms of CPU per EIGER 4M frame (bench/workers_scaling.py)
    # each comm keeps its last low-level-log-length batches of messages for debugging: with
    # the default (1000) the client's copies of recent task graphs (frame indices, pickled
    # arguments) stay alive, ~0.5 MB per 1000 frames until the log is full (bench/soak.py)
    # the system monitors of the scheduler and each worker read /proc through psutil twice
    # a second (CPU, memory, network, disk: for the dashboard's plots) and each worker's
    # memory monitor ten times a second: together ~0.3 ms of CPU per EIGER 4M frame at
    # 100 Hz, on the event loop the tasks' messages also wait for (bench/live_lag.py). Once
    # a second still pauses a worker whose memory runs full in time; the plots update slower.
    config = {
        "distributed.worker.profile.enabled": False,
        "distributed.admin.low-level-log-length": 10,
        "distributed.admin.system-monitor.interval": "2s",
        "distributed.admin.system-monitor.disk": False,
        "distributed.worker.memory.monitor-interval": "1s",
        # the scheduler and the worker each time their event loop every 20 ms by default
        # (to warn when it is blocked for seconds): 100 callbacks a second
        "distributed.admin.tick.interval": "200ms",
    }
    with warnings.catch_warnings(), dask.config.set(config):
        # without a dashboard the scheduler still opens an HTTP port and warns when 8787 is taken
        warnings.filterwarnings("ignore", message="Port 8787 is already in use")
        if processes:
            cluster = LocalCluster(
                n_workers=n_workers or ncores,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                **quiet,
            )
        else:
            cluster = LocalCluster(
                n_workers=1, threads_per_worker=n_workers or ncores, processes=False, **quiet
            )
        client = Client(cluster)
    if processes:
        client.run(_one_codec_thread)
    return client


def close_client(client, timeout: float = 60.0) -> None:
    """Close ``client`` and the local cluster it runs on, then wait (at most ``timeout``
    seconds) for the tasks still running in this process's worker threads.

    dask's worker threads are daemon threads and a closing worker does not wait for them: a
    process that exits while one of them is inside a compiled decoder or kernel that dropped
    the GIL can abort in the interpreter's shutdown ("terminate called without an active
    exception", exit -6) instead of exiting with its own code.
    """
    from concurrent.futures import ThreadPoolExecutor

    from distributed.utils import _offload_executor  # shared by every worker: stays open

    cluster = getattr(client, "cluster", None)
    executors = []
    for worker in getattr(cluster, "workers", {}).values():  # in-process (threads) workers
        for ex in getattr(worker, "executors", {}).values():
            if isinstance(ex, ThreadPoolExecutor) and ex is not _offload_executor:
                executors.append(ex)
    client.close()
    if cluster is not None:
        cluster.close()
    t_end = time.monotonic() + timeout
    for ex in executors:
        ex.shutdown(wait=True, timeout=max(t_end - time.monotonic(), 0.0))


def quiet_dask_logs() -> None:
    """Keep dask.distributed's INFO messages (cluster start-up and shut-down, ~40 lines) out
    of notebooks and terminals; its warnings and errors still show.

    ``silence_logs`` only quiets the handler distributed installs itself, so a notebook whose
    root logger is at INFO (``logging.basicConfig(level=logging.INFO)``) still printed them.
    To see them again: ``logging.getLogger("distributed").setLevel(logging.INFO)``.
    """
    logger = logging.getLogger("distributed")
    if logger.getEffectiveLevel() < logging.WARNING:
        logger.setLevel(logging.WARNING)
    # tasks cancelled when xlive stops its cluster (Ctrl-C, an error exit) are expected
    state = logging.getLogger("distributed.worker.state_machine")
    if _not_cancelled not in state.filters:
        state.addFilter(_not_cancelled)


def _not_cancelled(record: logging.LogRecord) -> bool:
    """False for dask's 'Async instruction ... ended with CancelledError' warnings."""
    return "ended with CancelledError" not in record.getMessage()


def _one_codec_thread() -> None:
    """One Blosc thread per worker process: workers already share out the cores."""
    import numcodecs.blosc

    numcodecs.blosc.set_nthreads(1)


# --------------------------------------------------------------------------- batch clusters
KINDS = ("local", "slurm")


class ClusterError(XliveError):
    """A batch cluster that cannot be used (no dask-jobqueue, no sbatch, bad settings)."""


@dataclass(frozen=True, kw_only=True)
class ClusterParams:
    """The ``[cluster]`` table: where workers run (``kind = "slurm"``) and how many."""

    #: "local" (this machine) or "slurm" (dask-jobqueue SLURMCluster)
    kind: str = "local"
    #: SLURM partition (None: the cluster's default partition)
    queue: str | None = None
    #: SLURM account (-A)
    account: str | None = None
    #: cores per job (each job runs one worker process with this many threads)
    cores: int = 4
    #: worker processes per job (threads per process = cores / processes)
    processes: int = 1
    #: run each worker under a dask nanny process (restarts it when it dies of memory); off:
    #: the job runs the worker itself (one Python start-up less; SLURM supervises the job)
    nanny: bool = True
    #: memory per job, e.g. "16GB"
    memory: str = "16GB"
    #: walltime per job, HH:MM:SS
    walltime: str = "01:00:00"
    #: jobs submitted at the start (also when adaptive scaling is off)
    jobs: int = 1
    #: adaptive scaling: fewest jobs kept (also while idle)
    minimum: int = 0
    #: adaptive scaling: most jobs (0: adaptive scaling off, ``jobs`` fixed)
    maximum: int = 4
    #: more ``#SBATCH`` lines, e.g. ["--reservation=beamtime", "--constraint=avx2"]
    extra_directives: tuple[str, ...] = ()
    #: network interface of the scheduler and workers (None: the host's address; "lo" when
    #: scheduler and workers all run on this machine, as in the single-node test cluster)
    interface: str | None = None
    #: seconds to wait for the first SLURM worker before processing on this machine meanwhile
    start_timeout: float = 60.0
    #: threads of the stand-in worker on this machine (0: all cores; -1: never process here)
    local_threads: int = 0
    #: folder for the jobs' output (None: SLURM's default, slurm-JOBID.out in the folder
    #: xlive was started in)
    log_directory: str | None = None
    #: seconds after a worker disappears before its job counts as lost and is replaced
    lost_worker_timeout: float = 2.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"kind must be one of {list(KINDS)}, got {self.kind!r}")
        for name in ("cores", "processes", "jobs"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.cores % self.processes:
            raise ConfigError(
                f"cores ({self.cores}) must be a multiple of processes ({self.processes})"
            )
        if self.minimum < 0 or self.maximum < 0:
            raise ConfigError("minimum and maximum must be 0 or more")
        if self.maximum and self.minimum > self.maximum:
            raise ConfigError(f"minimum ({self.minimum}) is above maximum ({self.maximum})")
        if self.maximum and not self.minimum <= self.jobs <= self.maximum:
            raise ConfigError(
                f"jobs ({self.jobs}) must lie between minimum "
                f"({self.minimum}) and maximum ({self.maximum})"
            )
        object.__setattr__(self, "extra_directives", tuple(self.extra_directives))

    @property
    def adaptive(self) -> bool:
        return self.maximum > 0


def _require_jobqueue():
    try:
        import dask_jobqueue
    except ImportError:
        raise ClusterError(
            "--cluster slurm needs dask-jobqueue: pip install "
            "'xlive[slurm]' (or pip install dask-jobqueue)"
        ) from None
    if shutil.which("sbatch") is None:
        raise ClusterError(
            "--cluster slurm needs the SLURM commands (sbatch, squeue, scancel) "
            "on PATH: run xlive on a login node of the cluster"
        )
    return dask_jobqueue


def slurm_cluster(params: ClusterParams, *, local_directory: str | None = None):
    """A ``dask_jobqueue.SLURMCluster`` from ``params`` (no job submitted yet)."""
    import dask

    jq = _require_jobqueue()
    default = dask.config.get("distributed.deploy.lost-worker-timeout")
    if default == "15s":  # dask's default, not the user's choice: notice lost jobs sooner
        dask.config.set(
            {"distributed.deploy.lost-worker-timeout": f"{params.lost_worker_timeout}s"}
        )
    kw = dict(
        cores=params.cores,
        processes=params.processes,
        memory=params.memory,
        walltime=params.walltime,
        queue=params.queue,
        account=params.account,
        job_extra_directives=list(params.extra_directives),
        interface=params.interface,
        python=sys.executable,
        nanny=params.nanny,
        # ":0": any free port (None would still try 8787, which is often taken)
        scheduler_options={"dashboard_address": ":0"},
        log_directory=params.log_directory,
    )
    if local_directory:
        kw["local_directory"] = local_directory
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Port 8787 is already in use")
        return jq.SLURMCluster(**kw)


def job_states(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """SLURM state and reason of each job still known to ``squeue``: id -> (state, reason)."""
    if not job_ids or shutil.which("squeue") is None:
        return {}
    try:
        out = subprocess.run(
            ["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i %T %r"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    states = {}
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2:
            states[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
    return states


def threads_needed(
    arrival: float, backlog: int, per_frame: float, drain: float, headroom: float = 1.25
) -> float:
    """Worker threads a live run needs: keep up with ``arrival`` frames/s (with ``headroom``)
    and work off ``backlog`` frames within ``drain`` seconds, at ``per_frame`` CPU s a frame."""
    return headroom * arrival * per_frame + backlog * per_frame / drain


class ClusterWorkers:
    """Worker jobs on a batch cluster for one live run: client, scaling, watchdog, fallback.

    Parameters
    ----------
    params
        The ``[cluster]`` settings (``kind = "slurm"``).
    notice
        Called with each plain-language notice (default: log at WARNING level).
    local_directory
        Scratch folder for the scheduler and the stand-in local worker.

    Attributes
    ----------
    client : distributed.Client
        The client to give :class:`~xlive.live.LiveProcessor`.
    notices : list of str
        Every notice given so far.
    """

    def __init__(
        self,
        params: ClusterParams,
        *,
        notice: Callable[[str], None] | None = None,
        local_directory: str | None = None,
        interval: float = 1.0,
    ):
        from distributed import Client

        from ._dask_plugins import BacklogAdaptive

        if params.kind != "slurm":
            raise ConfigError(f"ClusterWorkers runs batch workers; kind is {params.kind!r}")
        self.params = params
        self.notices: list[str] = []
        self._notice = notice
        self._local_directory = local_directory
        self.cluster = slurm_cluster(params, local_directory=local_directory)
        self.client = Client(self.cluster)
        self._processor = None
        self._local = None  # the stand-in worker on this machine
        self._last_slurm = time.monotonic()
        #: job name -> SLURM job id of the jobs seen at the last watchdog round
        self._job_ids: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.adaptive = None
        self._thread = threading.Thread(
            target=self._watch, args=(interval,), name="xlive-cluster-watchdog", daemon=True
        )
        try:
            if params.adaptive:
                self.adaptive = self.cluster.adapt(
                    Adaptive=BacklogAdaptive,
                    demand=self._demand,
                    interval="1s",
                    threads_per_worker=params.cores // params.processes,
                    minimum_jobs=params.minimum,
                    maximum_jobs=params.maximum,
                )
            self.cluster.scale(jobs=params.jobs)
            self._wait_first(params.start_timeout)
        except BaseException:  # e.g. Ctrl-C while waiting: cancel what was submitted
            self.close()
            raise
        self._thread.start()

    # ------------------------------------------------------------------ information
    @property
    def dashboard_link(self) -> str:
        return self.cluster.dashboard_link

    def jobs(self) -> dict[str, str]:
        """Job id -> dask-jobqueue status of every job the cluster holds."""
        return {
            str(j.job_id): str(getattr(j, "status", ""))
            for j in list(self.cluster.workers.values())
            if getattr(j, "job_id", None)
        }

    def slurm_workers(self) -> dict[str, str]:
        """Connected workers that run in SLURM jobs: worker address -> job name."""
        names = set(self.cluster.worker_spec) | set(self.cluster.workers)
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return {
            a: str(w.get("name"))
            for a, w in info.items()
            if _job_of(str(w.get("name")), names) is not None
        }

    def summary(self, max_age: float = 1.0) -> str:
        """One line: the workers and their jobs, e.g. ``SLURM: 2 workers (jobs 41, 42)``
        (recomputed at most every ``max_age`` seconds: status lines ask for it often)."""
        now = time.monotonic()
        cached = getattr(self, "_summary", None)
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
        text = self._make_summary()
        self._summary = (now, text)
        return text

    def _make_summary(self) -> str:
        held = dict(self.cluster.workers)
        workers = self.slurm_workers()
        names = {_job_of(n, set(held)) for n in workers.values()}
        running = sorted(_job_id(held[n]) for n in names if n in held)
        waiting = sorted(_job_id(j) for n, j in held.items() if n not in names)
        n = len(workers)
        text = f"SLURM: {n} worker{'s' * (n != 1)}"
        if running:
            text += f" (job{'s' * (len(running) != 1)} {', '.join(running)})"
        if waiting:
            text += (
                f", {len(waiting)} job{'s' * (len(waiting) != 1)} waiting to start "
                f"({', '.join(waiting)})"
            )
        if self._local is not None:
            text += "; processing on this machine meanwhile"
        return text

    # ------------------------------------------------------------------ live-loop link
    def attach(self, processor) -> None:
        """Let adaptive scaling see this processor's backlog."""
        self._processor = processor

    def _demand(self) -> float | None:
        """Worker threads the live loop needs now (None: no estimate yet)."""
        lp = self._processor
        if lp is None:
            return None
        try:
            prefix = self.cluster.scheduler.task_prefixes.get("analyze_block")
            done = lp.stats.frames_stored
            if prefix is None or done < 8:
                return None
            per_frame = prefix.all_durations.get("compute", 0.0) / max(done, 1)
        except AttributeError:  # a scheduler in another process
            return None
        return threads_needed(
            lp.arrival_rate(), lp.backlog(), per_frame, max(1.0, 0.5 * lp.params.latency_budget)
        )

    # ------------------------------------------------------------------ start and watch
    def _say(self, text: str) -> None:
        self.notices.append(text)
        if self._notice is not None:
            self._notice(text)
        else:
            log.warning("%s", text)

    def _wait_first(self, timeout: float) -> None:
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if self.slurm_workers():
                self._last_slurm = time.monotonic()
                return
            time.sleep(0.2)
        self._start_local(why=self._why_waiting())

    def _why_waiting(self) -> str:
        states = job_states(list(self.jobs()))
        if not states:
            return (
                "no SLURM job is queued (the submission failed; see the log above, or run "
                "`sbatch` by hand with the same settings)"
            )
        reasons = sorted(
            {f"{s.lower()}: {r}" if r and r != "None" else s.lower() for s, r in states.values()}
        )
        return f"the SLURM jobs {', '.join(sorted(states))} are waiting ({'; '.join(reasons)})"

    def _start_local(self, why: str) -> None:
        if self._local is not None or self.params.local_threads < 0:
            return
        from distributed import Worker

        nthreads = self.params.local_threads or os.cpu_count() or 1

        async def start():
            return await Worker(
                self.cluster.scheduler_address,
                nthreads=nthreads,
                name="xlive-local",
                memory_limit=0,
                dashboard=False,
                local_directory=self._local_directory,
            )

        self._local = self.client.sync(start)
        self._say(
            f"No SLURM worker after {self.params.start_timeout:.0f} s: {why}. "
            f"Processing on this machine ({nthreads} thread{'s' * (nthreads != 1)}) "
            f"until the jobs start."
        )

    def _stop_local(self) -> None:
        if self._local is None:
            return
        worker, self._local = self._local, None
        try:  # hand its data over (graceful), then close it
            self.client.retire_workers([worker.address], close_workers=True)
        except Exception as exc:
            log.info("retiring the local worker: %s", exc)
        self.client.sync(worker.close)
        self._say("SLURM workers have joined; this machine no longer processes frames.")

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.check()
            except Exception as exc:  # the cluster is closing, or squeue hiccups
                if self._stop.is_set():
                    return
                log.info("cluster watchdog: %s", exc)

    def check(self) -> None:
        """One watchdog round: replace lost jobs, start or retire the local stand-in."""
        with self._lock:
            c = self.cluster
            # a job whose worker died is dropped from cluster.workers after the lost-worker
            # timeout but stays in the spec: asking for the spec again submits a new job
            held = dict(c.workers)
            lost = [
                jid
                for name, jid in self._job_ids.items()
                if name in c.worker_spec and name not in held
            ]
            self._job_ids = {name: _job_id(job) for name, job in held.items()}
            if set(c.worker_spec) - set(held):
                c.scale(len(c.worker_spec))
            if lost:
                self._say(
                    f"SLURM job{'s' * (len(lost) > 1)} {', '.join(sorted(lost))} "
                    f"ended under a running worker (cancelled, node failure or walltime); "
                    f"submitted {'new jobs' if len(lost) > 1 else 'a new one'}. Frames "
                    f"it was computing are computed again."
                )
            if self.slurm_workers():
                self._last_slurm = time.monotonic()
                if self._local is not None:
                    self._stop_local()
            elif (
                self._local is None
                and time.monotonic() - self._last_slurm > self.params.start_timeout
            ):
                self._start_local(why=self._why_waiting())

    def close(self) -> None:
        """Cancel every job, stop the scheduler."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if self.adaptive is not None:
            self.adaptive.stop()
        local, self._local = self._local, None
        if local is not None:
            try:
                self.client.sync(local.close)
            except Exception as exc:
                log.info("closing the local worker: %s", exc)
        self.client.close()
        self.cluster.close()

    def __enter__(self) -> ClusterWorkers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _job_id(job) -> str:
    return str(getattr(job, "job_id", None) or "not submitted")


def _job_of(worker_name: str, job_names: set) -> str | None:
    """The job a worker belongs to (a job with several processes names them JOB-0, JOB-1 ...)."""
    if worker_name in job_names:
        return worker_name
    base = worker_name.rsplit("-", 1)[0]
    return base if base in job_names else None


def _close_failed_client(exc: BaseException) -> None:
    """Close the client whose construction raised ``exc``.

    distributed makes a client the process's default before it connects, and one that failed
    stays so while anything holds it (the exception's traceback does): every later dask
    computation in the process then waits for it forever. The constructor raised, so the
    object is only reachable from its own frame in the traceback.
    """
    from distributed import Client

    tb = exc.__traceback__
    while tb is not None:
        obj = tb.tb_frame.f_locals.get("self")
        if isinstance(obj, Client):
            obj.close()
            return
        tb = tb.tb_next


def make_client(
    params: ClusterParams | None = None,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    processes: bool = False,
    notice: Callable[[str], None] | None = None,
):
    """The dask client for a run: ``(client, cluster_workers or None)``.

    ``scheduler``: address of a running dask.distributed scheduler; else ``params.kind``
    "slurm" starts worker jobs (:class:`ClusterWorkers`), "local" uses this machine.
    """
    if scheduler and params is not None and params.kind != "local":
        raise ConfigError(
            "give either --scheduler (a running dask cluster) or --cluster slurm, not both"
        )
    if scheduler:
        from distributed import Client

        try:
            return Client(scheduler), None
        except (OSError, ValueError, TypeError) as exc:  # nobody there, or not an address
            _close_failed_client(exc)
            raise ConfigError(
                f"cannot connect to the dask scheduler {scheduler} ({exc}); start it, fix "
                "--scheduler, or leave --scheduler out to compute on this machine"
            ) from None
    if params is not None and params.kind == "slurm":
        cw = ClusterWorkers(params, notice=notice)
        return cw.client, cw
    return default_client(workers, processes=processes), None


def cluster_params(value, base: ClusterParams | None = None) -> ClusterParams | None:
    """ClusterParams from a kind name ("slurm"), a dict of ``[cluster]`` keys, or params."""
    if value is None or isinstance(value, ClusterParams):
        return value
    base = base or ClusterParams()
    if isinstance(value, str):
        return dataclasses.replace(base, kind=value)
    if isinstance(value, dict):
        allowed = [f.name for f in dataclasses.fields(ClusterParams)]
        for key in value:
            if key not in allowed:
                raise ConfigError(f"[cluster] has no key {key!r}; allowed: {', '.join(allowed)}")
        return dataclasses.replace(base, **value)
    raise ConfigError(f"cluster must be 'slurm', 'local', a dict or ClusterParams, got {value!r}")
