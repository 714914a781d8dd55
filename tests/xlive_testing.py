"""Helpers shared by the tests (importable because pyproject sets pythonpath = ["tests"])."""

from __future__ import annotations

import os
import subprocess
import sys


def run_xlive(
    *args: str, timeout: float = 300, check: bool = True, env: dict | None = None, **kw
) -> subprocess.CompletedProcess:
    """Run the installed ``xlive`` command line in a separate process (``env``: added to this
    process's environment)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "xlive.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kw,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"xlive {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Terminate a process a test started; kill it if it does not stop in ``timeout`` s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
