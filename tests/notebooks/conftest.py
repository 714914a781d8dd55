"""Run the notebooks with other parameters, as papermill does: the cell tagged ``parameters``
holds the user-facing defaults; the tests add a cell after it that overrides them."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def parameters_cell(nb) -> int:
    """Index of the one code cell tagged ``parameters``."""
    found = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])
    ]
    assert len(found) == 1, f"expected one cell tagged 'parameters', found {len(found)}"
    return found[0]


def assigned_names(source: str) -> set[str]:
    """Names a cell assigns at top level."""
    return {
        t.id
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }


def with_parameters(name: str, **params):
    """Notebook ``name`` with a cell tagged ``injected-parameters`` setting ``params`` after
    its ``parameters`` cell; only names that cell assigns can be overridden."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    i = parameters_cell(nb)
    unknown = set(params) - assigned_names(nb.cells[i].source)
    assert not unknown, f"{name}: the parameters cell does not set {sorted(unknown)}"
    cell = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in params.items()))
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(i + 1, cell)
    return nb


@pytest.fixture
def notebook_with():
    """``notebook_with(name, FRAMES=80, ...)``: the notebook with those parameters."""
    return with_parameters


@pytest.fixture
def notebook_file_with(tmp_path):
    """``notebook_file_with(name, FRAMES=80, ...)``: written to ``tmp_path/NAME.ipynb``."""

    def write(name: str, **params) -> Path:
        path = tmp_path / f"{name}.ipynb"
        nbformat.write(with_parameters(name, **params), path)
        return path

    return write
