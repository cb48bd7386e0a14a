"""What the screenshot scripts share: waiting on the Qt event loop, and their common options."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from qtpy.QtWidgets import QApplication

DOCS = Path(__file__).resolve().parents[1] / "docs"


def wait(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Process Qt events until ``condition()`` holds (True) or ``timeout_s`` passes (False)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        QApplication.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    return False


def parser(doc: str, picture: str, steps: int) -> argparse.ArgumentParser:
    """A parser with ``--out`` (default ``docs/<picture>``), ``--steps`` and ``--timeout``."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--out", default=str(DOCS / picture))
    p.add_argument("--steps", type=int, default=steps, help="shoot after this many steps")
    p.add_argument("--timeout", type=float, default=900.0)
    return p
