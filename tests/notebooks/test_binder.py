"""Binder as repo2docker builds it: a fresh venv from binder/requirements.txt runs the quickstart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_binder_environment_runs_the_quickstart(tmp_path, notebook_file_with):
    quickstart = notebook_file_with("quickstart", FRAMES=60, RATE=40.0)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    # repo2docker runs `pip install -r binder/requirements.txt` from the repository root (here
    # with the notebook runner in the same call, and without compiling every installed module
    # to bytecode, which was half of pip's CPU time: the notebook compiles what it imports)
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile"]
    subprocess.run(
        [*pip, "-r", "binder/requirements.txt", "nbclient", "ipykernel"],
        cwd=REPO,
        check=True,
        timeout=1200,
    )
    code = f"""
import nbformat
from nbclient import NotebookClient
nb = nbformat.read({str(quickstart)!r}, as_version=4)
NotebookClient(nb, timeout=600, kernel_name="python3").execute()
print("".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", [])))
"""
    env = {
        **os.environ,
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("PYTHONPATH", None)
    out = subprocess.run(
        [str(py), "-c", code], env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "frames handled" in out.stdout
    # xlive came from the repository (installed editable, as binder/requirements.txt says)
    where = subprocess.run(
        [str(py), "-c", "import xlive; print(xlive.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert where.startswith(str(REPO / "xlive")), where


@pytest.mark.slow
def test_binder_post_build_sends_the_dask_dashboard_link_through_the_proxy(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    env.pop("DASK_CONFIG", None)
    subprocess.run(["bash", "binder/postBuild"], cwd=REPO, env=env, check=True, timeout=120)
    code = """
from xlive.engine.cluster import default_client
from xlive.views.monitor import dashboard_link
client = default_client(1)
port = client.cluster.scheduler.http_server.port
print(dashboard_link(client), port)
client.close()
"""
    env["JUPYTERHUB_SERVICE_PREFIX"] = "/user/someone/"  # what JupyterHub (Binder) sets
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    link, port = out.stdout.split()
    assert link == f"/user/someone/proxy/{port}/status"
