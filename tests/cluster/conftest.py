"""A real single-node SLURM for the ``slurm`` tests, started once per session.

``ci/slurm-single-node.sh`` installs (Debian packages, when missing) and starts munge, slurmctld
and slurmd on 127.0.0.1 with a generated slurm.conf in a temporary folder, on free ports, and
stops them at the end. Starting it needs root; elsewhere the tests skip with the reason. In CI
(``CI`` set) a SLURM that does not start fails the tests instead: they must run there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "ci" / "slurm-single-node.sh"


def _free_port_pair() -> int:
    """A port p with p and p + 1 free on 127.0.0.1 (slurmctld, slurmd)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port > 65000:
            continue
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports on 127.0.0.1")


def _cannot(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"SLURM must run in CI, but: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def slurm():
    """The partition of a running single-node SLURM; ``SLURM_CONF`` is set for the session."""
    if not sys.platform.startswith("linux"):
        _cannot("the single-node SLURM test cluster runs on Linux only")
    if os.geteuid() != 0:
        _cannot(
            "starting slurmctld/slurmd/munged needs root (run the slurm tests as root, as CI does)"
        )
    if shutil.which("slurmd") is None and shutil.which("apt-get") is None:
        _cannot(
            "SLURM is not installed and there is no apt-get to install it "
            "(apt-get install --no-install-recommends munge slurmctld slurmd slurm-client)"
        )
    pytest.importorskip(
        "dask_jobqueue", reason="dask-jobqueue is not installed (pip install -e '.[test]')"
    )
    base = tempfile.mkdtemp(prefix="xlive-slurm-")
    env = dict(os.environ, SLURM_BASE=base, SLURM_PORT=str(_free_port_pair()))
    start = subprocess.run(
        ["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=300
    )
    if start.returncode:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, timeout=120)
        _cannot(f"ci/slurm-single-node.sh start failed:\n{start.stdout}\n{start.stderr}")
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = f"{base}/slurm.conf"  # sbatch/squeue/scancel read it
    try:
        yield "debug"
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, timeout=120)
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
        shutil.rmtree(base, ignore_errors=True)
