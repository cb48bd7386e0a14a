"""GUI tests: napari viewer + pytest-qt, under a display (run with ``xvfb-run -a``)."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest


def _gui_unavailable() -> str | None:
    for module in ("napari", "qtpy", "pytestqt"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'napari-gr2r[testing]')"
    try:
        import qtpy.QtWidgets  # noqa: F401
    except Exception as exc:  # qtpy raises its own errors when no Qt binding is usable
        return f"no usable Qt binding: {exc}"
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        # Qt's offscreen platform is not enough for napari's OpenGL canvas.
        return "no display: run the GUI tests under xvfb-run -a -s '-screen 0 1280x1024x24'"
    return None


GUI_UNAVAILABLE = _gui_unavailable()
NO_DISPLAY_MODULES = {"test_manifest.py"}
"""Modules here that need npe2 but no display (the manifest and the installed wheel)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        path = str(item.fspath)
        if path.startswith(here) and os.path.basename(path) not in NO_DISPLAY_MODULES:
            item.add_marker(pytest.mark.gui)
            if GUI_UNAVAILABLE:
                item.add_marker(pytest.mark.skip(reason=f"GUI test skipped: {GUI_UNAVAILABLE}"))


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Train the tests' tiny networks with one intra-op thread.

    On a small shared CPU, Qt's event loop and a second OpenMP thread fight over the cores, and
    a step of a tiny network measured here took 2.5 s with two threads against 0.04 s with one.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _own_cache_folder(tmp_path_factory, monkeypatch):
    """Each test its own user cache folder, so that the widget's autosaves stay apart."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
