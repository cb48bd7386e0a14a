"""The package's architecture: no import cycle, no GUI code in the headless layers, modules of a
readable size, and every headless module importable on its own in dependency order.

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


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _find_cycle(graph) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_import_graph_sees_the_package():
    assert "napari_gr2r.engine.model" in GRAPH["napari_gr2r.engine.checkpoint"]
    assert "napari_gr2r._version" in GRAPH["napari_gr2r.engine.checkpoint"]
    assert "napari_gr2r.engine.outofcore" in GRAPH["napari_gr2r.engine"]
    assert "napari_gr2r.engine.formats" in GRAPH["napari_gr2r.io"]
    assert "napari_gr2r.engine.formats" in GRAPH["napari_gr2r.cli.denoise"]  # inside a function


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
