"""Errors that say what went wrong and what to do about it."""

from __future__ import annotations


class GR2RError(Exception):
    """Base class of the errors the engine raises on bad input; the message is for users."""


class InputError(GR2RError, ValueError):
    """The image cannot be used as it is (dtype, NaN, size, emptiness)."""


class AxesError(InputError):
    """The axes string does not describe the array, or does not match the model."""


class OutputError(InputError):
    """An output cannot be written where asked: it is or overlaps the input, it is a folder,
    or another run is writing it."""


class ConfigError(GR2RError, ValueError):
    """A setting (of training or of denoising: tile, batch size, device, ...) is out of range."""


class CheckpointError(GR2RError, ValueError):
    """A model file is damaged, foreign, or from an incompatible version."""


class NumericalError(GR2RError, FloatingPointError):
    """A computation gave NaN or infinite values; nothing was returned or written."""
