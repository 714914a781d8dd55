"""xlive's workers as jobs of a real single-node SLURM (conftest.py starts it).

Features computed by SLURM workers must be identical to a local run's, also when a worker's job
is cancelled in the middle of a live run (the watchdog submits a new job, the lag recovers) and
when no job can start (the queue is full: the run goes on locally, with a notice).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
import time

import pytest
import xarray as xr
from xlive_testing import run_xlive, stop_process

from xlive.engine.cluster import ClusterParams, ClusterWorkers, job_states
from xlive.engine.live import LiveParams, LiveProcessor, default_client
from xlive.engine.session import LiveSession
from xlive.engine.store import DONE, open_features
from xlive.simulate import write_run
from xlive.sources import open_source
from xlive.views.status_line import status_text

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(300)]

#: compute every frame, however late (the default samples when the loop falls behind)
ALL_FRAMES = LiveParams(adaptive=False)
DETECTOR = "pilatus300k"  # the smallest: the node also runs the test and the scheduler


def params(slurm, **kw) -> ClusterParams:
    """Small jobs on the test node; scheduler and workers on 127.0.0.1; job logs in a
    temporary folder (SLURM writes slurm-JOBID.out into the submitting folder otherwise).
    Workers keep their nanny: without it, a worker cancelled while closing outlived its job
    here (orphaned when the test cluster stopped)."""
    base = dict(
        kind="slurm",
        queue=slurm,
        cores=1,
        memory="1GB",
        walltime="00:10:00",
        jobs=1,
        maximum=0,
        interface="lo",
        start_timeout=60.0,
        local_threads=-1,
        log_directory=tempfile.mkdtemp(prefix="xlive-slurm-logs-"),
    )
    return ClusterParams(**{**base, **kw})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("slurm") / "run"
    write_run(out, frames=48, rate=0, detector=DETECTOR, seed=11, hit_fraction=0.5)
    return out


def process_locally(run, path):
    """The reference: a run processed on this machine (every frame, no sampling)."""
    client = default_client(1)
    try:
        with LiveProcessor(open_source(run), path, client=client, params=ALL_FRAMES) as lp:
            lp.run()
    finally:
        client.close()
        client.cluster.close()
    return open_features(path)


@pytest.fixture(scope="module")
def local_features(run, tmp_path_factory):
    return process_locally(run, tmp_path_factory.mktemp("local") / "features.zarr")


def assert_same_features(path, reference) -> None:
    ds = open_features(path)
    assert (ds.status == DONE).all() and (reference.status == DONE).all()
    assert ds.sizes["frame"] == reference.sizes["frame"]
    assert set(ds.data_vars) == set(reference.data_vars)
    xr.testing.assert_equal(ds, reference)


def test_process_cluster_slurm_matches_a_local_run(slurm, run, local_features, tmp_path):
    """``xlive process --cluster slurm`` with a [cluster] table: workers are SLURM jobs (never
    this machine: local_threads = -1) and the features equal the local run's."""
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        f'[cluster]\nqueue = "{slurm}"\ncores = 1\nmemory = "1GB"\n'
        'walltime = "00:05:00"\njobs = 1\nminimum = 1\nmaximum = 2\n'
        'interface = "lo"\nlocal_threads = -1\n'
        f'log_directory = "{tmp_path / "logs"}"\n'
        'extra_directives = ["--job-name=xlive-test"]\n'
    )
    out = tmp_path / "features.zarr"
    proc = run_xlive(
        "process",
        str(run),
        "--out",
        str(out),
        "--cluster",
        "slurm",
        "--config",
        str(cfg),
        "--no-db",
        "-q",
        timeout=120,
    )
    assert "SLURM: 1 worker (job " in proc.stderr, proc.stderr
    assert "this machine" not in proc.stderr
    assert "stored features of 48 frames" in proc.stdout
    assert_same_features(out, local_features)


def test_workers_run_in_slurm_jobs(slurm, run, local_features, tmp_path):
    """A LiveSession (what Monitor and serve drive) with two SLURM jobs: both workers run
    inside SLURM (their environment has the job id squeue lists), the status line names the
    jobs, and the features equal the local run's."""
    session = LiveSession(
        run, tmp_path / "f.zarr", params=ALL_FRAMES, cluster=params(slurm, jobs=2)
    )
    try:
        cw = session.cluster_workers
        cw.client.wait_for_workers(2, timeout=60)
        # the SLURM job each worker process runs in (os.getenv travels by reference)
        env_jobs = set(cw.client.run(functools.partial(os.getenv, "SLURM_JOB_ID")).values())
        assert env_jobs == set(cw.jobs())
        assert {s for s, _ in job_states(sorted(env_jobs)).values()} == {"RUNNING"}
        session.processor.run()
        text = status_text(session)[1]
        assert "48 frames analysed of 48" in text
        assert f"SLURM: 2 workers (jobs {', '.join(sorted(env_jobs))})" in text, text
        assert not cw.notices
    finally:
        session.close()
    assert_same_features(tmp_path / "f.zarr", local_features)
    # closing the session cancelled the jobs
    assert not {s for s, _ in job_states(sorted(env_jobs)).values()} & {"RUNNING", "PENDING"}


def test_adaptive_scaling_follows_the_backlog(slurm, tmp_path):
    """Adaptive between 1 and 2 jobs: a backlog of frames (a finished run, worked off within
    half of a 0.5 s latency budget) makes dask submit a second job; once the run is done and
    idle, it goes back to the minimum of one job."""
    run = tmp_path / "run"
    write_run(run, frames=400, rate=0, detector="eiger1m", seed=5)
    spec_sizes = []
    with ClusterWorkers(params(slurm, jobs=1, minimum=1, maximum=2)) as cw:
        with LiveProcessor(
            open_source(run),
            tmp_path / "f.zarr",
            client=cw.client,
            params=LiveParams(adaptive=False, latency_budget=0.5),
        ) as lp:
            cw.attach(lp)
            while not (lp.idle and lp._seen == 400):
                lp.step()
                spec_sizes.append(len(cw.cluster.worker_spec))
        assert max(spec_sizes) == 2, spec_sizes  # a second job was asked for, not a third
        t_end = time.time() + 60
        while len(cw.cluster.worker_spec) > 1:  # idle: back to the minimum
            assert time.time() < t_end, cw.summary()
            time.sleep(0.2)
        assert len(cw.cluster.worker_spec) == 1


def test_cancelled_job_mid_run(slurm, tmp_path):
    """A live run (written at 2 frames/s while processed, no sampling) on one worker job,
    scancel'ed in the middle: the blocks lost with it (and the reader and analyzers shipped to
    it) are sent again, the watchdog submits a new job, the lag comes back under the latency
    budget, and the features of every frame equal a local run's."""
    live_run = tmp_path / "run"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xlive.cli",
            "simulate",
            str(live_run),
            "--frames",
            "100000",
            "--rate",
            "2",
            "--detector",
            DETECTOR,
            "--seed",
            "11",
            "--hit-fraction",
            "0.5",
            "-q",
        ],
        stderr=subprocess.PIPE,
    )
    budget = 5.0
    try:
        with ClusterWorkers(params(slurm, jobs=1)) as cw:
            t_end = time.time() + 60
            while not (live_run / "run.zarr" / "zarr.json").exists():
                assert time.time() < t_end and writer.poll() is None
                time.sleep(0.05)
            src = open_source(live_run)
            with LiveProcessor(
                src,
                tmp_path / "f.zarr",
                client=cw.client,
                params=LiveParams(adaptive=False, latency_budget=budget),
            ) as lp:
                cw.attach(lp)
                while lp.stats.frames_stored < 6:
                    lp.step()
                    assert time.time() < t_end
                (cancelled,) = cw.jobs()
                subprocess.run(["scancel", cancelled], check=True)
                stored_at_cancel = lp.stats.frames_stored
                # go on until the lag has recovered: the 8 newest frames within the budget
                t_end = time.time() + 90
                while not (
                    lp.stats.frames_stored > stored_at_cancel + 8
                    and max(list(lp.stats.lags)[-8:]) < budget
                ):
                    lp.step()
                    assert time.time() < t_end, "the lag did not recover"
                assert max(lp.stats.lags) > budget  # the outage did delay frames
                stop_process(writer)  # the run ends here
                stats = lp.run(until_idle=0.0)
            # the lost job was replaced by a new one
            jobs = cw.jobs()
            assert cancelled not in jobs and len(jobs) == 1, (cancelled, jobs)
            # one notice: the replacement (the new job started in time: nothing ran here)
            assert len(cw.notices) == 1, cw.notices
            assert f"SLURM job {cancelled} ended under a running worker" in cw.notices[0]
    finally:
        stop_process(writer)
    n = open_source(live_run).refresh()
    assert stats.frames_stored == n and stats.frames_skipped == 0
    assert_same_features(tmp_path / "f.zarr", process_locally(live_run, tmp_path / "local.zarr"))


def test_queue_full_processes_locally_with_a_notice(slurm, run, local_features, tmp_path):
    """Every core of the node is taken by another job: xlive's job waits (Resources), the run
    is processed on this machine with a plain-language notice; once the blocker ends, the SLURM
    worker joins and this machine stops processing."""
    cpus = subprocess.run(
        ["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    blocker = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "-p",
            slurm,
            "-c",
            cpus,
            "--mem=100M",
            "-t",
            "00:05:00",
            "-o",
            "/dev/null",
            "--wrap",
            "sleep 300",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        t_end = time.time() + 30
        while job_states([blocker]).get(blocker, ("",))[0] != "RUNNING":
            assert time.time() < t_end, job_states([blocker])
            time.sleep(0.2)
        notices: list[str] = []
        with ClusterWorkers(
            params(slurm, start_timeout=2.0, local_threads=1), notice=notices.append
        ) as cw:
            assert len(notices) == 1
            assert "No SLURM worker after 2 s" in notices[0]
            assert "are waiting (pending" in notices[0], notices
            assert "Processing on this machine" in notices[0]
            assert "processing on this machine meanwhile" in cw.summary()
            with LiveProcessor(
                open_source(run), tmp_path / "f.zarr", client=cw.client, params=ALL_FRAMES
            ) as lp:
                lp.run()
            assert_same_features(tmp_path / "f.zarr", local_features)
            subprocess.run(["scancel", blocker], check=True)
            t_end = time.time() + 60
            while len(notices) < 2:
                assert time.time() < t_end, cw.summary()
                time.sleep(0.2)
            assert "SLURM workers have joined" in notices[1]
            names = [w["name"] for w in cw.client.scheduler_info()["workers"].values()]
            assert names == list(cw.slurm_workers().values()) and "xlive-local" not in names
    finally:
        subprocess.run(["scancel", blocker])
