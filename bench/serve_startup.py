"""Start-up of the live dashboard: seconds from ``xlive serve RUN`` to the first analysed frame
on the page, in headless chromium (Debian's /usr/bin/chromium driven by playwright).

    python bench/serve_startup.py --detector eiger4m --repeat 3     # goal (issue 16): < 3 s

A finished simulated run is written once (``xlive simulate``, or ``--run`` reuses one). Each
round starts ``xlive serve RUN --port P`` as a new process (a fresh interpreter: imports,
geometry, analyzers, numba kernels loaded from its on-disk cache; the run's first block is
analysed in the live loop's thread and shown before dask.distributed is imported and the dask
cluster started), opens the page
as soon as the server says it is serving (``xlive serve`` starts its page server before the engine, so
the browser loads the page and BokehJS while the run is opened and its analyzers built; the
document comes once the session is there, before the live loop starts), and waits until the hit-rate strip chart holds a
frame (then, for the record, until every plot is drawn: the page's first document holds the
views of the first frames and gets the others once drawn). The first round also fills numba's cache if it is cold; the figure asked for is with a
warm cache, so the last line reports the later rounds (the best and the median).

``--phases`` first times the start-up's phases in a fresh interpreter (imports, opening the run,
geometry maps (read back from the on-disk cache of large detectors' maps once a first run
wrote them), analyzers, first numba call, the session's first frame analysed in-process (as
``xlive serve`` does before any dask cluster starts), then the dask client and a block
through it), to show where the seconds go, then builds and serialises the page's first
document (deferred: the first frames' views) and the whole page's document side by side,
twice each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIRST_FRAME = (
    "() => window.Bokeh && Bokeh.documents.length > 0 && "
    "Bokeh.documents[0].get_model_by_name('hit_rate_source').data.frame.length > 0"
)
DOCUMENT = "() => window.Bokeh && Bokeh.documents.length > 0"
#: every plot of the page has a view drawn (the page builds some after its first document)
ALL_PLOTS = (
    "() => window.Bokeh && Bokeh.documents.length > 0 && ["
    + ", ".join(
        f"'{n}'"
        for n in (
            "hit_rate",
            "spots",
            "d_min",
            "detector",
            "radial",
            "waterfall",
            "powder",
            "separation",
            "peakogram",
            "lag",
            "correlation",
        )
    )
    + "].every(n => { const m = Bokeh.documents[0].get_model_by_name(n + '_plot');"
    " return m != null && Bokeh.index.find_one(m) != null; })"
)


PHASES = r"""
import sys, time
t = time.perf_counter()
def tick(name):
    global t
    n = time.perf_counter()
    print(f"  {name:56s} {n - t:6.2f} s", flush=True)
    t = n
import numpy; tick("import numpy")
import xlive.cli.main; tick("import xlive.cli.main")
from xlive.views.app import serve_session; tick("import views.app (bokeh server)")
from xlive.engine.session import LiveSession; tick("import engine (zarr, numba, kernels; no distributed)")
import xlive.views.layout; tick("import views.layout (the dashboard's views)")
from xlive.registry import open_source
src = open_source(sys.argv[1]); tick("open the run")
g = src.geometry; g.maps.q; tick("geometry maps")
import numba; from xlive.analyzers._kernels.runs import pixel_runs
pixel_runs(numpy.zeros((2, 2), numpy.int16)); tick("first numba call (cache load)")
from xlive.analyzers import default_analyzers
an = default_analyzers(g); tick("build analyzers")
f = src.reader.read_one(0); tick("read frame 0")
for a in an: a(f[None])
tick("analyse frame 0")
s = LiveSession(src); tick("a LiveSession (analyzers, feature store; no client)")
s.processor.first_block_here(1); tick("its first frame, here (xlive serve: then shown)")
s.processor.client; tick("then: import distributed, start the dask client")
while not s.step(): pass
tick("then: a block through the cluster (ship, warm up, run)")
from bokeh.document import Document
from bokeh.protocol import Protocol
from xlive.views.app import add_dashboard
for _ in range(400):  # on to the first hit: the detector view then sends its image
    if s.latest_hit is not None: break
    s.step()
for defer, name in ((True, "first page document (deferred)"), (False, "whole page document")):
    for k in range(2):  # the first build pays bokeh's first-use costs
        doc = Document(); add_dashboard(doc, s, defer=defer)
        patch = 0.0
        if defer:  # what a waiting page's dashboard also cost as a PATCH-DOC before its reply
            from bokeh.document.events import RootAddedEvent  # (xlive serve no longer builds it)
            p0 = time.perf_counter()
            Protocol().create("PATCH-DOC", [RootAddedEvent(doc, doc.roots[0], None)])
            patch = time.perf_counter() - p0
            t += patch  # not part of the document's figure
        msg = Protocol().create("PULL-DOC-REPLY", "x", doc)
        mb = (len(msg.content_json) + sum(len(b.to_bytes()) for b in msg.buffers)) / 1e6
        tick(f"{name}: {len(doc.models)} models, {mb:.1f} MB")
        if defer:
            print(f"    (as a PATCH-DOC, no longer built: {patch:.2f} s)", flush=True)
s.close()
"""


def phases(run: Path) -> None:
    """Time the start-up phases in a fresh interpreter (see the module docstring)."""
    print("start-up phases in a fresh interpreter:", flush=True)
    subprocess.run([sys.executable, "-c", PHASES, str(run)], check=True)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (Linux ``/proc``): what
    the server did, whatever the machine's load made it wait."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_round(run: Path, browser, timeout: float) -> dict[str, float]:
    """Seconds from starting ``xlive serve`` to each milestone of the page: ``serving`` (the
    server says so), ``html`` (the page's HTML and scripts loaded), ``document`` (BokehJS holds
    the document), ``first`` (the hit-rate chart holds an analysed frame) and ``all`` (every
    plot of the page drawn); ``cpu``: CPU seconds the server had used at ``first``."""
    port = free_port()
    t0 = time.monotonic()
    server = subprocess.Popen(
        [sys.executable, "-m", "xlive.cli", "serve", str(run), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    t: dict[str, float] = {}
    try:
        line = ""
        while "serving" not in line:
            line = server.stdout.readline()
            if not line and server.poll() is not None:
                raise RuntimeError(f"xlive serve exited with {server.returncode}")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"xlive serve did not start within {timeout} s")
        t["serving"] = time.monotonic() - t0
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
        t["html"] = time.monotonic() - t0
        for name, check in (("document", DOCUMENT), ("first", FIRST_FRAME), ("all", ALL_PLOTS)):
            page.wait_for_function(check, timeout=timeout * 1000, polling=50)
            t[name] = time.monotonic() - t0
            if name == "first":
                t["cpu"] = cpu_seconds(server.pid)
        page.close()
        return t
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detector", default="eiger4m")
    ap.add_argument("--frames", type=int, default=20, help="frames of the simulated run")
    ap.add_argument("--run", help="an existing run to serve (default: simulate one)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds (the first may warm caches)")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--phases", action="store_true", help="also time the start-up's phases")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else Path(tmp) / "run"
        if not args.run:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "xlive.cli",
                    "simulate",
                    str(run),
                    "--frames",
                    str(args.frames),
                    "--rate",
                    "0",
                    "--detector",
                    args.detector,
                    "-q",
                ],
                check=True,
            )
        if args.phases:
            phases(run)
        firsts, cpus = [], []
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--headless", "--no-sandbox", "--disable-gpu"],
            )
            try:
                for k in range(args.repeat):
                    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
                    t = one_round(run, browser, args.timeout)
                    firsts.append(t["first"])
                    cpus.append(t["cpu"])
                    print(
                        f"round {k + 1}: serving after {t['serving']:.2f} s, page loaded "
                        f"{t['html']:.2f} s, document {t['document']:.2f} s, first analysed "
                        f"frame on the page after {t['first']:.2f} s (server CPU {t['cpu']:.2f} s), every plot "
                        f"drawn {t['all']:.2f} s (load average {load})",
                        flush=True,
                    )
            finally:
                browser.close()
    warm = firsts[1:] or firsts
    warm_cpu = cpus[1:] or cpus
    label = args.run or args.detector
    print(
        f"startup ({label}, warm numba cache): best {min(warm):.2f}s "
        f"median {statistics.median(warm):.2f}s from `xlive serve RUN` to the first frame shown"
        f" (server CPU median {statistics.median(warm_cpu):.2f}s)"
    )


if __name__ == "__main__":
    main()
