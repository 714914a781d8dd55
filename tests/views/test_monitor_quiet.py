"""The notebook Monitor without dask's log chatter, and with a working link to the dask dashboard.

In a real kernel (nbclient) whose root logger is at INFO, as many users' notebooks are.
"""

from __future__ import annotations

import json

import nbformat
import pytest
from nbclient import NotebookClient

CELLS = [
    "import logging\nlogging.basicConfig(level=logging.INFO)",
    "import xlive\nm = xlive.Monitor(RUN)\nm",
    """
import json, urllib.request
handled = await m.wait(timeout=120)
with urllib.request.urlopen(m.dashboard_link, timeout=10) as r:
    page = r.status, r.read(2000).decode(errors="replace")
print(json.dumps({"link": m.dashboard_link, "status": page[0], "html": m.links.value,
                  "handled": handled}))
""",
    'logging.getLogger("distributed.scheduler").warning("a real dask warning")',
    "m.close()",
]


@pytest.mark.slow
def test_monitor_is_quiet_and_links_the_dask_dashboard(tmp_path, simulator):
    run = tmp_path / "run"
    simulator(run, frames=12, rate=0)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_code_cell(f"RUN = {str(run)!r}")] + [
        nbformat.v4.new_code_cell(c.strip()) for c in CELLS
    ]
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    def stderr(cell) -> str:
        return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stderr")

    # no dask INFO lines around the Monitor (they were 27 before it, ~15 at close)
    for i in (2, 3, 5):
        assert "INFO:distributed" not in stderr(nb.cells[i]), stderr(nb.cells[i])[:2000]
    # real warnings still reach the user
    assert "WARNING:distributed.scheduler:a real dask warning" in stderr(nb.cells[4])
    text = "".join(o.get("text", "") for o in nb.cells[3].outputs if o.get("name") == "stdout")
    out = json.loads(text.strip().splitlines()[-1])
    assert out["handled"] == 12
    # the link reaches the dashboard served on loopback, and the Monitor shows it as a link
    assert out["link"].startswith("http://127.0.0.1:") and out["link"].endswith("/status")
    assert out["status"] == 200
    assert f"href='{out['link']}'" in out["html"]
