"""The HTML report: self-contained (BokehJS inline), with plots, flags and run figures; it opens
in headless chromium without errors and draws its plots (screenshots in test-artifacts/)."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from xlive_testing import run_xlive

from xlive.aggregate.flags import Flag
from xlive.outputs.report import build_report

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PLOTS = {"hit_rate", "spots", "d_min", "radial", "powder", "peakogram"}
FLAG = Flag("jet_lost", "error", "Jet lost: the water ring is weak. Check the jet.")


@pytest.fixture(scope="module")
def report(processed, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    run_xlive("report", str(processed.features), "--html", str(out))
    return out


def test_report_is_self_contained(report):
    text = report.read_text()
    # no script or stylesheet comes from the network: BokehJS is inline
    assert not re.findall(r"<script[^>]+src=", text)
    assert not re.findall(r"<link[^>]+href=\"http", text)
    assert "Bokeh" in text and len(text) > 500_000


def test_layout_has_the_main_plots_flags_and_figures(processed):
    layout, summary, _ = build_report(processed.features, flags=[FLAG])
    names = {m.name for m in layout.references() if getattr(m, "name", None) in PLOTS}
    assert names == PLOTS
    divs = {d.name: d.text for d in layout.references() if type(d).__name__ == "Div"}
    assert "jet_lost" in divs["flags"] and "RED" in divs["flags"]
    assert f"<td>{summary.hits}</td>" in divs["figures"]
    assert summary.status == "red"


@pytest.mark.browser
def test_report_opens_in_chromium_and_draws_its_plots(report):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    from PIL import Image
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium,
            timeout=60_000,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(30_000)
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            page.on(
                "console",
                lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None,
            )
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
            page.goto(report.as_uri(), wait_until="load")
            page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0")
            canvases = page.locator("canvas")
            page.wait_for_function("() => Object.values(Bokeh.index).length > 0", timeout=30_000)
            page.wait_for_timeout(1000)  # let the plots paint
            assert canvases.count() >= len(PLOTS)
            for text in ("Run figures", "Flags", "Status:", "Hit rate"):
                assert page.get_by_text(text).count() >= 1, text
            shown = page.evaluate(
                "names => names.filter(n => Bokeh.documents[0].get_model_by_name(n) !== null)",
                sorted(PLOTS),
            )
            assert set(shown) == PLOTS
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
            drawn = 0
            for k in range(canvases.count()):
                c = canvases.nth(k)
                box = c.bounding_box()
                if not box or box["width"] < 200 or box["height"] < 150:
                    continue
                c.scroll_into_view_if_needed()
                img = Image.open(io.BytesIO(c.screenshot())).convert("RGB")
                if len(np.unique(np.asarray(img).reshape(-1, 3), axis=0)) > 20:
                    drawn += 1
            assert drawn >= len(PLOTS), f"only {drawn} canvases show a drawn plot"
        finally:
            browser.close()
    assert not errors, errors
