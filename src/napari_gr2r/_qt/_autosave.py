"""Autosave of the widget's training runs in the user's cache folder, offered back after a crash.

While the widget trains, the engine writes its checkpoint (the best weights so far, and what
resuming needs) to ``<user cache>/napari-gr2r/autosave/autosave-<pid>-<id>.gr2r.pt``, with a
small JSON note beside it naming the layer. The cache folder is platformdirs' (napari's own
convention): ``~/.cache/napari-gr2r`` on Linux, ``~/Library/Caches/napari-gr2r`` on macOS,
``%LOCALAPPDATA%\\napari-gr2r\\Cache`` on Windows. A run that ends (finished, stopped, or
failed with an error the widget shows) deletes its files; a file whose process is gone was
left by a crash, and the next widget offers it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from napari_gr2r import engine

_PREFIX = "autosave-"
_SUFFIX = ".gr2r.pt"


def autosave_dir() -> Path:
    """The folder of autosaved models (created when first written)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("napari-gr2r", appauthor=False)) / "autosave"


def _note_path(path: Path) -> Path:
    return path.with_name(path.name[: -len(_SUFFIX)] + ".json")


def new_autosave(layer_name: str) -> Path:
    """A fresh autosave path for a run on ``layer_name`` (its note is written now)."""
    folder = autosave_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}{_SUFFIX}"
    note = {"layer": layer_name, "started": time.strftime("%Y-%m-%d %H:%M")}
    _note_path(path).write_text(json.dumps(note))
    return path


def discard(path: str | os.PathLike) -> None:
    """Delete an autosave and its note (missing files are fine)."""
    path = Path(path)
    for p in (path, _note_path(path)):
        with contextlib.suppress(OSError):
            p.unlink()


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        import psutil  # a napari dependency; os.kill(pid, 0) would end a process on Windows

        return bool(psutil.pid_exists(pid))
    except ImportError:  # pragma: no cover - napari brings psutil
        return False


@dataclass
class Leftover:
    """An autosave left by a run whose process ended without finishing it."""

    path: Path
    layer: str
    started: str
    step: int
    total_steps: int
    best_step: int

    def describe(self) -> str:
        return (f"Training on {self.layer!r} (started {self.started}) was interrupted at step "
                f"{self.step} of {self.total_steps}; its best weights (step {self.best_step}) "
                "were autosaved.")


def leftovers() -> list[Leftover]:
    """Autosaves of processes that are gone, newest first; unreadable ones are discarded."""
    folder = autosave_dir()
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob(f"{_PREFIX}*{_SUFFIX}"):
        try:
            pid = int(path.name[len(_PREFIX):].split("-")[0])
        except ValueError:
            continue
        if _process_alive(pid):
            continue
        try:
            note = json.loads(_note_path(path).read_text())
        except (OSError, ValueError):
            note = {}
        try:
            model = engine.load_model(path)
        except engine.GR2RError:
            discard(path)  # a file damaged beyond use helps nobody
            continue
        state = model.training_state or {}
        total = int(state.get("run_start", 0)) + int(state.get("run_steps", model.config.steps))
        found.append(Leftover(path=path, layer=str(note.get("layer", "?")),
                              started=str(note.get("started", "?")), step=model.step,
                              total_steps=total, best_step=model.best_step))
    found.sort(key=lambda item: item.path.stat().st_mtime, reverse=True)
    return found
