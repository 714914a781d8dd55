"""The [cluster] table, the SLURM job it asks for, and the arithmetic of adaptive scaling
(no SLURM needed: these run everywhere)."""

from __future__ import annotations

import shutil

import pytest

from xlive.config import parse_config
from xlive.engine.cluster import (
    ClusterError,
    ClusterParams,
    cluster_params,
    make_client,
    threads_needed,
)
from xlive.errors import ConfigError


def test_cluster_table_reaches_cluster_params():
    cfg = parse_config(
        {
            "cluster": {
                "kind": "slurm",
                "queue": "beamtime",
                "cores": 8,
                "memory": "32GB",
                "walltime": "02:00:00",
                "jobs": 2,
                "minimum": 1,
                "maximum": 6,
                "extra_directives": ["--reservation=mx", "--exclusive"],
            }
        }
    )
    c = cfg.cluster
    assert (c.kind, c.queue, c.cores, c.memory, c.walltime) == (
        "slurm",
        "beamtime",
        8,
        "32GB",
        "02:00:00",
    )
    assert (c.jobs, c.minimum, c.maximum, c.adaptive) == (2, 1, 6, True)
    assert c.extra_directives == ("--reservation=mx", "--exclusive")
    assert cfg.to_dict()["cluster"]["queue"] == "beamtime"
    assert parse_config({}).cluster.kind == "local"


@pytest.mark.parametrize(
    "table, message",
    [
        ({"nodes": 3}, "\\[cluster\\] has no key 'nodes'"),
        ({"cores": "four"}, "\\[cluster\\] cores must be an integer"),
        ({"kind": "pbs"}, "kind must be one of"),
        ({"cores": 0}, "cores must be at least 1"),
        ({"minimum": 5, "maximum": 2, "jobs": 1}, "minimum \\(5\\) is above maximum"),
        ({"jobs": 9, "maximum": 4}, "jobs \\(9\\) must lie between"),
        ({"cores": 6, "processes": 4}, "multiple of processes"),
    ],
)
def test_bad_cluster_tables_say_what_is_wrong(table, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({"cluster": table})


def test_cluster_params_from_a_name_or_a_dict():
    base = ClusterParams(cores=2)
    assert cluster_params("slurm", base) == ClusterParams(kind="slurm", cores=2)
    assert cluster_params({"kind": "slurm", "jobs": 2}).jobs == 2
    with pytest.raises(ConfigError, match="has no key 'node'"):
        cluster_params({"kind": "slurm", "node": 1})


def test_scheduler_and_slurm_together_are_refused():
    with pytest.raises(ConfigError, match="either --scheduler"):
        make_client(ClusterParams(kind="slurm"), scheduler="tcp://127.0.0.1:1")


def test_slurm_without_sbatch_says_how_to_fix(monkeypatch, tmp_path):
    pytest.importorskip("dask_jobqueue")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch there
    with pytest.raises(ClusterError, match="login node"):
        make_client(ClusterParams(kind="slurm"))


def test_job_script_carries_the_table():
    pytest.importorskip("dask_jobqueue")
    if shutil.which("sbatch") is None:
        pytest.skip("sbatch is not installed (apt-get install slurm-client)")
    from xlive.engine.cluster import slurm_cluster

    cluster = slurm_cluster(
        ClusterParams(
            kind="slurm",
            queue="beamtime",
            account="mx1234",
            cores=4,
            processes=2,
            memory="8GB",
            walltime="00:30:00",
            extra_directives=("--reservation=mx",),
            interface="lo",
            nanny=False,
        )
    )
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in (
        "#SBATCH -p beamtime",
        "#SBATCH -A mx1234",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH -t 00:30:00",
        "#SBATCH --reservation=mx",
        "--nworkers 2",
        "--nthreads 2",
        "--interface lo",
        "--no-nanny",
    ):
        assert line in script, script
    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")


def test_threads_needed_keeps_up_and_drains():
    # 500 frames/s at 20 ms: 10 threads busy, 12.5 with headroom; nothing queued
    assert threads_needed(500, 0, 0.020, 2.5) == pytest.approx(12.5)
    # idle run with 1000 frames queued: work them off in 2.5 s
    assert threads_needed(0, 1000, 0.020, 2.5) == pytest.approx(8.0)
    assert threads_needed(0, 0, 0.020, 2.5) == 0
