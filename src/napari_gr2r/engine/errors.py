"""Errors that say what went wrong and what to do about it, and the plain-words helpers of
every message a user reads (:func:`one_line`, :func:`format_duration`)."""

from __future__ import annotations

import math


class GR2RError(Exception):
    """Base class of the errors the engine raises on bad input; the message is for users."""


class InputError(GR2RError, ValueError):
    """The image cannot be used as it is (dtype, NaN, size, emptiness)."""


class AxesError(InputError):
    """The axes string does not describe the array, or does not match the model."""


class OutputError(InputError):
    """An output cannot be written where asked: it is or overlaps the input, it is a folder,
    or another run is writing it."""


class WriteError(OutputError, OSError):
    """A file could not be written (a full disk, a quota, no permission); nothing
    half-written is left. An ``OSError`` too, for code that handles file-system errors."""


class ConfigError(GR2RError, ValueError):
    """A setting (of training or of denoising: tile, batch size, device, ...) is out of range."""


class CheckpointError(GR2RError, ValueError):
    """A model file is damaged, foreign, or from an incompatible version."""


class ProcessLostError(GR2RError, RuntimeError):
    """Another process of a training run on several processes ended (killed, out of memory,
    an error of its own) or stopped answering; what this process had saved stays whole."""


class DeviceMemoryError(GR2RError, MemoryError):
    """The GPU (or another accelerator) has no memory for even one tile of the network's
    forward pass; the message names a smaller tile or another device."""


class NumericalError(GR2RError, FloatingPointError):
    """A computation gave NaN or infinite values; nothing was returned or written."""


# --------------------------------------------------------------------------------------------
# plain words for users: one line per error, durations people read


def one_line(exc: BaseException, kind: bool = True) -> str:
    """An exception as one line for a user: the project's own errors and file-system errors
    by their message (an ``OSError`` names its file), anything else prefixed with its kind
    (unless ``kind`` is False: a detail inside a sentence that already says what failed).

    >>> one_line(InputError("The image is empty.\\nMore."))
    'The image is empty.'
    >>> one_line(FileNotFoundError(2, "No such file or directory", "a.tif"))
    'a.tif: No such file or directory'
    """
    if isinstance(exc, OSError) and not isinstance(exc, GR2RError) and exc.filename:
        text = f"{exc.filename}: {exc.strerror or exc}"
    else:
        lines = str(exc).strip().splitlines()
        text = lines[0] if lines else ""
    text = " ".join(text.split())
    if text and (not kind or isinstance(exc, (GR2RError, OSError))):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def format_duration(seconds: float, clock: bool = False) -> str:
    """A duration for people: ``"45 s"``, ``"2.5 min"``, ``"1.2 h"``; with ``clock``,
    ``"3:07"`` or ``"1:05:09"`` (a count-down that changes every second). ``"?"`` when not
    known (NaN, infinite, negative).

    >>> format_duration(150), format_duration(150, clock=True)
    ('2.5 min', '2:30')
    """
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    if clock:
        h, rest = divmod(round(seconds), 3600)
        m, s = divmod(rest, 60)
        return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
