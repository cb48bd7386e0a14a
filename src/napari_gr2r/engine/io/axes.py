"""Axes strings: which dimension of an array is samples, channels, Z, Y and X."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import AxesError, InputError

AXIS_LETTERS = "TSCZYX"
SAMPLE_LETTERS = "TS"
MAX_CHANNELS = 16


@dataclass(frozen=True)
class AxesInfo:
    """How an array's dimensions map onto (samples..., C, Z, Y, X)."""

    axes: str
    shape: tuple[int, ...]

    @property
    def sample_axes(self) -> str:
        return "".join(a for a in self.axes if a in SAMPLE_LETTERS)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[self.axes.index(a)] for a in self.sample_axes)

    @property
    def n_samples(self) -> int:
        return math.prod(self.sample_shape)

    def size(self, letter: str) -> int:
        return self.shape[self.axes.index(letter)] if letter in self.axes else 1

    @property
    def n_channels(self) -> int:
        return self.size("C")

    @property
    def czyx(self) -> tuple[int, int, int, int]:
        return (self.size("C"), self.size("Z"), self.size("Y"), self.size("X"))

    @property
    def order(self) -> tuple[int, ...]:
        """Permutation that brings the array to (samples..., [C], [Z], Y, X)."""
        letters = self.sample_axes + "".join(a for a in "CZYX" if a in self.axes)
        return tuple(self.axes.index(a) for a in letters)


def parse_axes(axes: str, shape: tuple[int, ...]) -> AxesInfo:
    """Check that ``axes`` describes an array of ``shape`` and return its :class:`AxesInfo`.

    Letters: ``T`` or ``S`` (independent samples: time points, positions), ``C`` (channels),
    ``Z``, ``Y``, ``X``. Examples: ``"YX"``, ``"ZYX"``, ``"TYX"``, ``"YXC"``, ``"TCZYX"``.
    """
    shape = tuple(int(s) for s in shape)
    example = {2: "YX", 3: "ZYX or TYX or YXC", 4: "TZYX or CZYX", 5: "TCZYX"}.get(len(shape), "YX")
    if not isinstance(axes, str) or not axes.strip():
        raise AxesError(
            f"Axes must be a string with one letter per dimension, such as {example!r} "
            f"for an image of shape {shape}."
        )
    axes = axes.strip().upper()
    unknown = sorted({a for a in axes if a not in AXIS_LETTERS})
    if unknown:
        raise AxesError(
            f"Unknown axis letter(s) {', '.join(unknown)} in {axes!r}. Use T or S for independent "
            "samples (time points, positions), C for channels, and Z, Y, X for space."
        )
    repeated = sorted({a for a in axes if axes.count(a) > 1})
    if repeated:
        raise AxesError(f"Axis letter(s) {', '.join(repeated)} appear more than once in {axes!r}.")
    if len(axes) != len(shape):
        raise AxesError(
            f"Axes {axes!r} have {len(axes)} letters but the image has {len(shape)} dimensions "
            f"(shape {shape}); give one letter per dimension, e.g. {example!r}."
        )
    if "Y" not in axes or "X" not in axes:
        raise AxesError(f"Axes {axes!r} must contain both Y and X (the image plane).")
    if 0 in shape:
        raise InputError(f"The image is empty (shape {shape}); there is nothing to denoise.")
    info = AxesInfo(axes, shape)
    for letter in "YX":
        if info.size(letter) < 2:
            raise InputError(
                f"Axis {letter} has only {info.size(letter)} pixel; an image needs at least 2 "
                f"pixels in Y and X. Check the axes string {axes!r} against the shape {shape}."
            )
    if info.n_channels > MAX_CHANNELS:
        raise AxesError(
            f"Axis C has {info.n_channels} entries, more than the {MAX_CHANNELS} channels "
            "supported; if it is really depth or time, label it Z or T."
        )
    return info


def guess_axes(shape: tuple[int, ...], rgb: bool = False) -> str:
    """A reasonable default axes string for an array shape (``rgb``: last axis is colour)."""
    ndim = len(shape)
    if rgb:
        return {3: "YXC", 4: "ZYXC", 5: "TZYXC"}.get(ndim, "YXC")
    return {2: "YX", 3: "ZYX", 4: "TZYX", 5: "TCZYX"}.get(ndim, "YX")
