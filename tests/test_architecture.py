"""The house rules of docs/architecture.md, checked on the source: the import graph has no
cycles, each layer imports only itself and the layers below, and kernels stay numpy/numba."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xlive"

#: layers, lowest first; a module may import its own layer and those below (docs/architecture.md)
LAYERS = [
    ("foundation", ["xlive.conventions", "xlive.errors", "xlive.validate"]),
    ("kernels", ["xlive.analyzers._kernels", "xlive.aggregate._kernels"]),
    ("geometry", ["xlive.geometry"]),
    ("data", ["xlive.registry", "xlive.sources", "xlive.analyzers", "xlive.simulate"]),
    ("engine", ["xlive.aggregate", "xlive.engine", "xlive.config"]),
    ("front", ["xlive.views", "xlive.outputs"]),
    ("command", ["xlive.cli"]),
]
#: third-party packages of the front-ends (kept out of everything below them)
UI = {"bokeh", "ipywidgets", "jupyter_bokeh", "IPython"}
#: what the kernels must not import
NOT_IN_KERNELS = {"dask", "distributed", "xarray", "zarr", "bokeh", "ipywidgets", "h5py"}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> tuple[set[str], set[str]]:
    """(xlive modules, third-party top-level packages) imported anywhere in the module,
    including imports inside functions (lazy imports are edges of the graph too)."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    internal, external = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import sub` imports the module pkg.sub
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for t in targets:
            if t == "xlive" or t.startswith("xlive."):
                while t not in known:  # `xlive.geometry.Geometry` -> `xlive.geometry`
                    t = t.rpartition(".")[0]
                if t != name:
                    internal.add(t)
            else:
                external.add(t.split(".")[0])
    return internal, external


@pytest.fixture(scope="module")
def graph():
    mods = modules()
    known = set(mods)
    return {name: imports(name, path, known) for name, path in mods.items()}


def layer_of(name: str) -> int | None:
    best = None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if name == p or name.startswith(p + "."):
                if best is None or len(p) > best[1]:
                    best = (i, len(p))
    return None if best is None else best[0]


def test_every_module_has_a_layer(graph):
    # the package root only re-exports (lazily); every other module belongs to a layer
    missing = [m for m in graph if m != "xlive" and layer_of(m) is None]
    assert not missing, f"modules outside the layers of docs/architecture.md: {missing}"


def test_no_import_cycles(graph):
    edges = {m: {t for t in internal if t != "xlive"} for m, (internal, _) in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                cycle = stack[stack.index(t) :] + [t]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_layers_import_downwards(graph):
    wrong = []
    for m, (internal, _) in graph.items():
        lm = layer_of(m)
        if lm is None:
            continue
        for t in internal:
            lt = layer_of(t)
            if lt is not None and lt > lm:
                wrong.append(f"{m} ({LAYERS[lm][0]}) imports {t} ({LAYERS[lt][0]})")
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(wrong))


def test_kernels_import_only_numpy_and_numba(graph):
    kernels = [m for m in graph if layer_of(m) == 1]
    assert len(kernels) >= 5
    for m in kernels:
        internal, external = graph[m]
        assert not external & NOT_IN_KERNELS, (m, external & NOT_IN_KERNELS)
        assert all(layer_of(t) <= 1 for t in internal), (m, internal)


def test_only_the_front_ends_import_ui_packages(graph):
    for m, (_, external) in graph.items():
        if layer_of(m) is not None and layer_of(m) < 5:
            assert not external & UI, f"{m} imports {external & UI}"


def test_every_xlive_import_names_an_existing_module():
    """Lazy imports fail only when they run: check that every ``from ..x import y`` (and
    ``import xlive.x``) names a module of the package (a moved module leaves none behind)."""
    known = set(modules())
    missing = []
    for name, path in modules().items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    mod = ".".join(
                        base[: len(base) - node.level + 1] + ([node.module] if node.module else [])
                    )
                else:
                    mod = node.module or ""
                if not mod.startswith("xlive"):
                    continue
                ok = mod in known or all(f"{mod}.{a.name}" in known for a in node.names)
            elif isinstance(node, ast.Import):
                mod = next((a.name for a in node.names if a.name.startswith("xlive")), None)
                ok = mod is None or mod in known
            else:
                continue
            if not ok:
                missing.append(f"{name} (line {node.lineno}) imports {mod}")
    assert not missing, "imports of modules that do not exist:\n" + "\n".join(missing)


def test_the_checker_sees_lazy_and_relative_imports(graph):
    # cli.process imports the session inside a function, relatively: the edge must be there
    assert "xlive.engine.session" in graph["xlive.cli.process"][0]
    assert "numba" in graph["xlive.analyzers._kernels.peaks"][1]
