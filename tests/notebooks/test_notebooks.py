"""Every notebook in notebooks/ runs top to bottom on a short simulated run (nbclient)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
#: frames per notebook when the suite runs it (enough for the flags each one shows)
FRAMES = {
    "quickstart": 80,
    "beamtime": 150,
    "reprocessing": 100,
    "pump_probe": 100,
    "rotation_dose": 120,
}


def test_notebooks_are_stripped_and_declare_a_kernel():
    found = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    assert found == sorted(FRAMES)
    for name in found:
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "python3", name
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, name


def execute(name: str, tmp_path: Path, monkeypatch, frames: int, rate: float = 40.0):
    monkeypatch.setenv("XLIVE_NB_FRAMES", str(frames))
    monkeypatch.setenv("XLIVE_NB_RATE", str(rate))
    monkeypatch.setenv("XLIVE_NB_WAIT", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    return nb


def text_of(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", ""))
            out.append(str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FRAMES))
def test_notebook_runs(name, tmp_path, monkeypatch):
    nb = execute(name, tmp_path, monkeypatch, FRAMES[name])
    text = text_of(nb)
    assert "Traceback" not in text
    if name == "quickstart":
        assert "frames handled" in text and "status:" in text
    elif name == "beamtime":
        assert "status:" in text and "HitsExport(hits=" in text
        assert any(p.stat().st_size > 0 for p in tmp_path.glob("xlive-notebook-*/hits.cxi"))
    elif name == "reprocessing":
        assert f"frames in the store: {FRAMES[name]} of {FRAMES[name]}" in text
    elif name == "pump_probe":
        assert "laser on:" in text
    elif name == "rotation_dose":
        assert "sample_dying" in text
