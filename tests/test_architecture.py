"""The package's architecture: the engine's packages in one order (nothing imports upwards), no
import cycle, no GUI code in the headless layers, modules and functions of a readable size, and every
headless module importable on its own in dependency order.

See docs/architecture.md for the layers these checks keep in place.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import napari_gr2r

PACKAGE = "napari_gr2r"
ROOT = Path(napari_gr2r.__file__).resolve().parent
GUI_PACKAGES = frozenset(
    {"napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt", "vispy",
     "pyqtgraph"}
)
HEADLESS = ("napari_gr2r.engine", "napari_gr2r.io", "napari_gr2r.cli", "napari_gr2r.sample_data")
"""Modules (and packages) that must run without napari or Qt."""
MAX_LINES = 400
REASON = "longer than 400 lines because"
MAX_FUNCTION_LINES = 80
FUNCTION_REASON = "longer than 80 lines because"
ENGINE = f"{PACKAGE}.engine"
ENGINE_LAYERS = (
    "errors", "checks", "config", "devices",
    "io", "data", "noise", "model", "inference", "quality", "training", "batch", "export", "api",
)
"""The engine's modules and packages, lowest first (docs/architecture.md says what each holds). A
module may import from its own layer and the ones before it, never from a later one."""


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = (PACKAGE, *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(name: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` statement in module ``name`` reads from."""
    if node.level == 0:
        return node.module or ""
    package = name.split(".") if _is_package(name) else name.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _known(dotted: str) -> str | None:
    """The package module that importing ``dotted`` loads last (its longest known prefix)."""
    parts = dotted.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _imports(name: str) -> tuple[set[str], set[str]]:
    """``(package modules, top-level third-party names)`` imported anywhere in ``name``,
    at module level and inside functions."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    internal: set[str] = set()
    external: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, node)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] == PACKAGE:
                module = _known(target)
                if module is not None and module != name:
                    internal.add(module)
            else:
                external.add(target.split(".")[0])
    return internal, external


GRAPH = {name: _imports(name)[0] for name in MODULES}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def _dependency_order(graph: dict[str, set[str]]) -> list[str]:
    """Modules with every module they import before them."""
    order: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        done.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in done:
                visit(nxt)
        order.append(node)

    for start in sorted(graph):
        if start not in done:
            visit(start)
    return order


def _is_headless(name: str) -> bool:
    return any(name == h or name.startswith(h + ".") for h in HEADLESS)


def _layer(name: str) -> int:
    """The index in ``ENGINE_LAYERS`` of the engine module ``name`` (the engine's ``__init__``
    comes after every layer)."""
    if name == ENGINE:
        return len(ENGINE_LAYERS)
    first = name[len(ENGINE) + 1:].split(".")[0]
    if first not in ENGINE_LAYERS:
        raise AssertionError(f"{name} is in no layer of ENGINE_LAYERS: add it there and to "
                             "docs/architecture.md")
    return ENGINE_LAYERS.index(first)


def _upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``"a -> b"`` for every engine module ``a`` importing an engine module ``b`` of a later layer."""
    found = []
    for name, targets in sorted(graph.items()):
        if name != ENGINE and not name.startswith(ENGINE + "."):
            continue
        for target in sorted(targets):
            if target.startswith(ENGINE + ".") and _layer(target) > _layer(name):
                found.append(f"{name} -> {target}")
    return found


def test_layer_check_finds_an_upward_import():
    training, noise = f"{ENGINE}.training.trainer", f"{ENGINE}.noise.level"
    assert _upward_imports({noise: {training}, training: set()}) == [f"{noise} -> {training}"]
    assert _upward_imports({training: {noise}, noise: set()}) == []
    assert _upward_imports({f"{ENGINE}.errors": {f"{ENGINE}.config"}})  # one module, one layer


def test_engine_imports_only_downwards():
    upward = _upward_imports(GRAPH)
    assert not upward, "engine imports from a later layer (see ENGINE_LAYERS): " + "; ".join(upward)


def test_architecture_doc_lists_the_layers_in_order():
    doc = (ROOT.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    listed = [line.split()[1].rstrip("/").removesuffix(".py")
              for line in doc.splitlines() if line.startswith("| ") and "`" not in line.split()[1]
              and line.split()[1].rstrip("/").removesuffix(".py") in ENGINE_LAYERS]
    assert listed == list(ENGINE_LAYERS)


def test_functions_are_short_or_say_why():
    too_long = {}
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                docstring = ast.get_docstring(node) or ""
                if lines > MAX_FUNCTION_LINES and FUNCTION_REASON not in docstring:
                    too_long[f"{path.relative_to(ROOT).as_posix()}:{node.name}"] = lines
    assert not too_long, (
        f"functions over {MAX_FUNCTION_LINES} lines without a reason ('{FUNCTION_REASON} ...') in "
        f"their docstring: {too_long}"
    )


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _find_cycle(graph) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_import_graph_sees_the_package():
    assert "napari_gr2r.engine.model.model" in GRAPH["napari_gr2r.engine.model.checkpoint"]
    assert "napari_gr2r._version" in GRAPH["napari_gr2r.engine.model.checkpoint"]
    assert "napari_gr2r.engine.inference.outofcore" in GRAPH["napari_gr2r.engine"]
    assert "napari_gr2r.engine.io.formats" in GRAPH["napari_gr2r.io"]
    assert "napari_gr2r.engine.io.formats" in GRAPH["napari_gr2r.cli.denoise"]  # inside a function


def test_no_import_cycle():
    cycle = _find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_headless_modules_import_no_gui():
    offenders = {}
    for name in MODULES:
        if _is_headless(name):
            gui = sorted(_imports(name)[1] & GUI_PACKAGES)
            if gui:
                offenders[name] = gui
    assert not offenders, f"headless modules importing GUI packages: {offenders}"


def test_modules_are_short_or_say_why():
    too_long = {}
    for path in MODULES.values():
        relative = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if lines > MAX_LINES and REASON not in docstring:
            too_long[relative] = lines
    assert not too_long, (
        f"modules over {MAX_LINES} lines without a reason ('{REASON} ...') in their docstring: "
        f"{too_long}"
    )


def test_headless_modules_import_in_dependency_order():
    order = [name for name in _dependency_order(GRAPH)
             if _is_headless(name) and not name.endswith("__main__")]
    assert "napari_gr2r.engine.errors" in order
    code = (
        "import importlib, sys\n"
        f"for name in {order!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        sys.exit(f'{name}: {type(exc).__name__}: {exc}')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
