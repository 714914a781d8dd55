"""A small simulated run processed once by the live loop, with a live CXI listener attached;
a throwaway PostgreSQL server (initdb + pg_ctl on 127.0.0.1, a free port, trust auth).

As root the server runs as the ``postgres`` user Debian's package creates (PostgreSQL refuses to
run as root). The PostgreSQL test skips, saying why, when the server binaries, psycopg or that
user are missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from xlive.engine.live import LiveParams, LiveProcessor, default_client
from xlive.outputs.cxi import CXIHitsListener
from xlive.simulate import write_run
from xlive.sources import open_source

FRAMES = 32


@pytest.fixture(scope="session")
def processed(tmp_path_factory) -> SimpleNamespace:
    """``run`` (Zarr), ``features`` (store from the default analyzers), ``live_cxi``/``live_lst``
    (hits written by :class:`CXIHitsListener` while the run was processed)."""
    tmp: Path = tmp_path_factory.mktemp("outputs")
    run = tmp / "run"
    write_run(
        run,
        frames=FRAMES,
        rate=0,
        detector="eiger500k",
        seed=11,
        hit_fraction=0.5,
        laser_on_fraction=0.5,
        ice_fraction=0.1,
    )
    src = open_source(run)
    feats, live_cxi, live_lst = tmp / "features.zarr", tmp / "live.cxi", tmp / "live.lst"
    client = default_client(2)
    try:
        with (
            CXIHitsListener(src, live_cxi, lst=live_lst) as listener,
            LiveProcessor(
                src,
                feats,
                client=client,
                listeners=[listener],
                params=LiveParams(block=4, poll_interval=30.0),
            ) as lp,
        ):
            stats = lp.run(until_idle=0.0)
    finally:
        client.close()
        client.cluster.close()
    assert stats.frames_stored == FRAMES
    return SimpleNamespace(
        tmp=tmp,
        run=run,
        features=feats,
        live_cxi=live_cxi,
        live_lst=live_lst,
        hits_live=listener.hits,
    )


@pytest.fixture(scope="session")
def postgres_url():
    """URL of a PostgreSQL server started for the tests on 127.0.0.1 (skips if impossible)."""
    try:
        srv = start()
    except Unavailable as exc:
        pytest.skip(f"no PostgreSQL for the run-database test: {exc}")
    try:
        yield srv.url
    finally:
        srv.stop()


# --------------------------------------------------------------------------- PostgreSQL


class Unavailable(RuntimeError):
    """PostgreSQL cannot run here (the message says why)."""


def _bin(name: str) -> str | None:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for d in dirs:
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    url: str
    datadir: str
    root: str
    pg_ctl: str
    user: str | None

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.pg_ctl, *args],
            user=self.user,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def stop(self) -> None:
        try:
            self._run("-D", self.datadir, "-m", "immediate", "-w", "-t", "30", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start(timeout: float = 60) -> PgServer:
    """Start a server; the caller must call ``stop()``."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise Unavailable("PostgreSQL server binaries not found (apt-get install -y postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise Unavailable('psycopg is not installed (pip install "psycopg[binary]")') from None
    user = None
    if os.geteuid() == 0:
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable(
                "running as root and there is no 'postgres' user to run the server as"
            ) from None
        user = "postgres"
    root = tempfile.mkdtemp(prefix="xlive-pg-")
    if user:
        os.chown(root, pw.pw_uid, pw.pw_gid)
    datadir = os.path.join(root, "data")
    port = _free_port()
    srv = PgServer(
        url=f"postgresql+psycopg://xlive@127.0.0.1:{port}/postgres",
        datadir=datadir,
        root=root,
        pg_ctl=pg_ctl,
        user=user,
    )
    init = subprocess.run(
        [initdb, "-D", datadir, "-U", "xlive", "-A", "trust", "-E", "UTF8", "--no-sync"],
        user=user,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if init.returncode:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr}")
    opts = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off"
    run = srv._run(
        "-D",
        datadir,
        "-l",
        os.path.join(root, "log"),
        "-o",
        opts,
        "-w",
        "-t",
        str(int(timeout)),
        "start",
        timeout=timeout + 10,
    )
    if run.returncode:
        log = (
            open(os.path.join(root, "log")).read()
            if os.path.exists(os.path.join(root, "log"))
            else ""
        )
        srv.stop()
        raise RuntimeError(f"pg_ctl start failed: {run.stderr}\n{log}")
    return srv
