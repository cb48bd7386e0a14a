"""Typed events of :func:`napari_gr2r.engine.batch.run.denoise_files`, one run over many files.

Plain frozen dataclasses of numbers and strings, like the training events: the command line
prints them, the widget draws them, a test asserts on them. Every event knows how many files
the run has; an event about one file also knows its position and its path.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FilesEvent:
    """Base class of the events of :func:`denoise_files`."""

    n_files: int


@dataclass(frozen=True)
class FileEvent(FilesEvent):
    """An event about one input: its position ``index`` (from 0) and its path."""

    index: int
    path: str


@dataclass(frozen=True)
class FileStarted(FileEvent):
    output: str


@dataclass(frozen=True)
class FileProgress(FileEvent):
    """``done`` of ``total`` blocks of the current file are denoised."""

    done: int
    total: int
    unit: str = "block"


@dataclass(frozen=True)
class FileDone(FileEvent):
    output: str
    axes: str
    shape: tuple[int, ...]
    seconds: float
    warning: str | None = None
    """Why this result may be wrong (the file's values lie mostly outside the model's
    training range), else None."""


@dataclass(frozen=True)
class FileSkipped(FileEvent):
    """The result is already there (a whole TIFF, a complete zarr store)."""

    output: str
    reason: str


@dataclass(frozen=True)
class FileFailed(FileEvent):
    """The file could not be denoised; ``reason`` is one line for the user."""

    reason: str


@dataclass(frozen=True)
class FilesFinished(FilesEvent):
    """All files are handled (or the run was stopped)."""

    done: int
    skipped: int
    failed: tuple[tuple[str, str], ...]
    """``(path, reason)`` of each file that failed."""
    outputs: tuple[str, ...]
    """The results written or found, in input order."""
    stopped: bool
    elapsed_s: float
    warned: tuple[str, ...] = ()
    """The inputs denoised with a warning (see :attr:`FileDone.warning`), in input order."""
