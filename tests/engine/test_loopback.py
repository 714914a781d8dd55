"""Everything xlive starts listens on 127.0.0.1 only (the dask scheduler and workers too)."""

from __future__ import annotations

import psutil  # a dependency of dask.distributed
import pytest

from xlive.engine.cluster import default_client


def _listening(pids) -> list[tuple[str, int]]:
    out = []
    for pid in pids:
        for conn in psutil.Process(pid).net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                out.append((conn.laddr.ip, conn.laddr.port))
    return out


@pytest.mark.parametrize("processes", [False, True])
def test_local_cluster_listens_on_loopback_only(processes):
    me = psutil.Process()
    before = set(_listening([me.pid]))
    client = default_client(2, processes=processes)
    try:
        pids = [me.pid, *(c.pid for c in me.children(recursive=True))]
        new = [a for a in _listening(pids) if a not in before]
        assert new, "the cluster opened no port at all (nothing to check)"
        assert all(ip == "127.0.0.1" for ip, _ in new), new
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
