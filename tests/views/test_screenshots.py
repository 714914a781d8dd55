"""Screenshots of the dashboard (``xlive serve``) and of the HTML report (``xlive report``) in
headless chromium at 1280x800 and 1920x1080, kept as test artifacts; each page must render its
plots (ink in every plot area), fit the window's width and log no JavaScript error.

The screenshots go to ``$XLIVE_ARTIFACTS/screenshots`` when that variable is set (CI uploads
it), else to a pytest temporary folder (printed). One ``xlive serve`` of a short finished run
serves every size.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from xlive_testing import run_xlive, stop_process

from xlive.views.app import free_port

SIZES = [(1280, 800), (1920, 1080)]
#: plots of the dashboard that must show ink (the finished run hides the lag chart)
DASHBOARD_PLOTS = (
    "hit_rate",
    "spots",
    "d_min",
    "radial",
    "waterfall",
    "powder",
    "separation",
    "peakogram",
    "detector",
)
REPORT_PLOTS = ("hit_rate", "spots", "d_min", "radial", "powder", "peakogram")

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    root = os.environ.get("XLIVE_ARTIFACTS")
    out = Path(root) / "screenshots" if root else tmp_path_factory.mktemp("screenshots")
    out.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {out}")
    return out


@pytest.fixture(scope="module")
def served(finished_run, tmp_path_factory):
    """``xlive serve`` of the finished 80-frame run: (url, feature store)."""
    import subprocess

    features = tmp_path_factory.mktemp("served") / "features.zarr"
    port = free_port()
    cmd = [sys.executable, "-m", "xlive.cli", "serve", str(finished_run), "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--features", str(features)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        t_end = time.time() + 90
        line = ""
        while "serving" not in line:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "xlive serve exited"
            assert time.time() < t_end, "xlive serve did not start within 90 s"
        yield f"http://127.0.0.1:{port}/", features
    finally:
        stop_process(proc)


def _launch(chromium, size, errors):
    page = chromium.new_page(viewport={"width": size[0], "height": size[1]})
    page.set_default_timeout(60_000)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    return page


#: the page rectangle of a plot's data area (frame) and of its whole view, by model name
_BOXES_JS = """([names, suffix]) => {
  const d = Bokeh.documents[0];
  const out = {};
  for (const n of names) {
    const m = d.get_model_by_name(n + suffix);
    const v = m == null ? null : Bokeh.index.find_one(m);
    if (v == null || !m.visible) continue;
    const r = v.el.getBoundingClientRect();
    const f = v.frame == null ? null : v.frame.bbox;
    out[n] = {
      view: [r.left + scrollX, r.top + scrollY, r.width, r.height],
      frame: f == null ? null : [r.left + scrollX + f.left, r.top + scrollY + f.top, f.width, f.height],
    };
  }
  return out;
}"""

#: elements wider than the window (their right edge beyond it)
_OVERFLOW_JS = """() => {
  const w = document.documentElement.clientWidth;
  const wide = [];
  for (const m of Bokeh.documents[0].all_models) {
    if (!m.name) continue;  // every plot, table, widget and layout of ours has a name
    const v = Bokeh.index.find_one(m);
    if (v == null || v.el == null) continue;
    const r = v.el.getBoundingClientRect();
    if (r.width > 0 && r.right > w + 1) wide.push(m.type + ' ' + (m.name || '') + ': ' + Math.round(r.right));
  }
  return {scroll: document.documentElement.scrollWidth, width: w, wide: wide.slice(0, 10)};
}"""


def _ink(img: np.ndarray) -> int:
    """Pixels that differ clearly from the area's most common colour (grid lines do not)."""
    flat = img.reshape(-1, 3).astype(int)
    colors, counts = np.unique(flat, axis=0, return_counts=True)
    background = colors[np.argmax(counts)]
    return int((np.abs(flat - background).max(axis=1) > 48).sum())


def _check_page(page, plots, path: Path, suffix: str = "_plot") -> dict:
    """Screenshot the whole page to ``path``; assert it fits the window and every plot has
    ink in its data area. Returns the plots' boxes."""
    from PIL import Image

    page.wait_for_timeout(1500)  # let the canvases paint
    page.screenshot(path=str(path), full_page=True)
    shot = np.asarray(Image.open(path).convert("RGB"))
    boxes = page.evaluate(_BOXES_JS, [list(plots), suffix])
    assert set(boxes) == set(plots), f"plots not drawn: {set(plots) - set(boxes)}"
    for name, box in boxes.items():
        x, y, w, h = (int(round(v)) for v in (box["frame"] or box["view"]))
        assert w > 100 and h > 80, (name, box)
        area = shot[y : y + h, x : x + w]
        assert _ink(area) >= 50, f"{name}: its plot area is blank in {path.name}"
    wide = page.evaluate(_OVERFLOW_JS)
    assert wide["scroll"] <= wide["width"] + 1 and not wide["wide"], (
        f"{path.name}: wider than the window: {wide}"
    )
    return boxes


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_dashboard_screenshot(served, chromium, screenshots, size):
    url, _ = served
    errors: list[str] = []
    page = _launch(chromium, size, errors)
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0")
    page.wait_for_function(
        "() => Bokeh.documents[0].get_model_by_name('status_plot').text.includes('run finished')",
        timeout=120_000,
    )
    page.wait_for_function(  # a finished run: the lag chart (built after the first frames'
        # views, once the page has drawn them) is gone
        "() => { const m = Bokeh.documents[0].get_model_by_name('lag_plot');"
        " return m != null && !m.visible; }",
        timeout=60_000,
    )
    boxes = _check_page(page, DASHBOARD_PLOTS, screenshots / f"dashboard-{size[0]}x{size[1]}.png")
    # the detector view's controls sit right under the image, inside the window
    ctrl = page.evaluate(
        "() => { const m = Bokeh.documents[0].get_model_by_name('previous_hit_button');"
        " const r = Bokeh.index.find_one(m).el.getBoundingClientRect();"
        " return [r.left, r.top + scrollY, r.right]; }"
    )
    det = boxes["detector"]["view"]
    assert det[1] + det[3] - 1 <= ctrl[1] <= det[1] + det[3] + 120, (det, ctrl)
    assert ctrl[2] <= size[0]
    # under the cursor: pixel, counts, d-spacing (from the geometry's per-pixel map), panel
    fx, fy, fw, fh = boxes["detector"]["frame"]
    page.evaluate(f"() => window.scrollTo(0, {max(fy - 100, 0)})")
    page.mouse.move(
        fx + fw * 0.3 - page.evaluate("scrollX"), fy + fh * 0.5 - page.evaluate("scrollY")
    )
    rows = page.locator(".bk-tooltip-row-value")
    rows.first.wait_for(timeout=20_000)
    tip = " ".join(rows.all_inner_texts())
    assert "Å" in tip and "p0" in tip, tip
    title = page.evaluate("() => Bokeh.documents[0].get_model_by_name('detector_plot').title.text")
    assert "spots" in title and ("of" in title or "found" in title), title
    page.close()
    assert not errors, errors


@pytest.fixture(scope="module")
def report_html(served, tmp_path_factory):
    """``xlive report`` of the served run's feature store, once every frame is handled."""
    _, features = served
    out = tmp_path_factory.mktemp("report") / "report.html"
    t_end = time.time() + 120
    while not _all_handled(features, 80):
        assert time.time() < t_end, "the served run's store did not handle its 80 frames"
        time.sleep(1)
    run_xlive("report", str(features), "--html", str(out))
    return out


def _all_handled(features: Path, n: int) -> bool:
    """Whether the store has seen ``n`` frames and handled every one (computed, found bad or
    skipped by sampling when the loop fell behind)."""
    from xlive.engine.cf import PENDING
    from xlive.engine.store import FeatureStore

    try:
        status = FeatureStore.open(features).status()
    except Exception:  # not created yet
        return False
    return status.size == n and bool((status != PENDING).all())


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_report_screenshot(report_html, chromium, screenshots, size):
    errors: list[str] = []
    page = _launch(chromium, size, errors)
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.goto(report_html.as_uri(), wait_until="load")
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0")
    page.wait_for_function("() => Object.values(Bokeh.index).length > 0")
    _check_page(page, REPORT_PLOTS, screenshots / f"report-{size[0]}x{size[1]}.png", "")
    page.close()
    assert not errors, errors
