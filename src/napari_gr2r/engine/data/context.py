"""Neighbouring planes as context: the planes around each plane, stacked as input channels.

With ``TrainConfig.context = k`` a 2D network denoises a plane from the ``2k + 1`` planes
around it, along the *context axis*: T when the image has one (time-lapses ``TYX``,
``TCYX``, and ``TZYX`` plane by plane), else Z (a Z stack denoised by a 2D network); an image
with neither (``YX``, ``CYX``) is a single plane, its own context. The planes are stacked
along the channel axis, nearest first from ``-k`` to ``+k``, each with its ``C`` channels::

    input channels = [plane -k: C channels, ..., plane 0: C channels, ..., plane +k: C channels]

so the network has ``C * (2k + 1)`` input channels and ``C`` output channels, the centre
plane's (:func:`centre_of`).

Beyond the ends of the stack the planes are reflected without repeating the border plane
(``-1`` is plane 1, as ``numpy.pad(mode="reflect")``), so a border plane's context holds other
planes, with their own noise, rather than copies of itself; a stack shorter than the window
folds back and forth, and a single plane is its own context everywhere.
:func:`reflect_index` gives the plane each slot reads.

:class:`ContextSource` reads an :class:`~napari_gr2r.engine.io.sources.ImageSource` this way,
block by block: training patches, in-memory tiles and out-of-core blocks all come from it,
and out-of-core blocks thereby read their halo along the context axis (``k`` planes each way)
from the image. :class:`StackNormalization` normalises such blocks (each plane with its
channel's scaling).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from ..config import MAX_CONTEXT
from ..io.axes import AxesInfo
from .normalization import Normalization

__all__ = [
    "MAX_CONTEXT",
    "ContextSource",
    "GatheredBlock",
    "StackNormalization",
    "centre_copies",
    "centre_of",
    "context_axis",
    "context_images",
    "context_source",
    "planes_of",
    "reflect_index",
    "stack_normalization",
    "with_centre",
]


def context_axis(info: AxesInfo, dims: int) -> str | None:
    """``"T"`` when the image has a T axis, else ``"Z"`` for a 2D network on a Z stack, else
    None (one plane: no neighbours)."""
    if "T" in info.axes:
        return "T"
    if "Z" in info.axes and dims == 2:
        return "Z"
    return None


def reflect_index(i: int | np.ndarray, n: int) -> Any:
    """Index ``i`` reflected into ``range(n)`` without repeating the border (period
    ``2(n - 1)``); every index is 0 when ``n == 1``.

    >>> [int(reflect_index(i, 3)) for i in range(-3, 6)]
    [1, 2, 1, 0, 1, 2, 1, 0, 1]
    """
    if n == 1:
        return np.zeros_like(i) if isinstance(i, np.ndarray) else 0
    period = 2 * (n - 1)
    j = np.mod(i, period)
    return np.where(j >= n, period - j, j) if isinstance(i, np.ndarray) else \
        int(period - j if j >= n else j)


def centre_of(x: Any, channels: int) -> Any:
    """The centre plane's ``channels`` of a ``(B, C * (2k + 1), ...)`` stack (``x`` itself
    when it has ``channels`` channels: context 0)."""
    planes = x.shape[1] // channels
    if planes <= 1:
        return x
    k = (planes - 1) // 2
    return x[:, k * channels:(k + 1) * channels]


def planes_of(x: torch.Tensor, channels: int) -> torch.Tensor:
    """``(B, C * P, ...)`` as ``(B, P, C, ...)``."""
    return x.reshape(x.shape[0], x.shape[1] // channels, channels, *x.shape[2:])


def centre_copies(y: torch.Tensor, channels: int) -> torch.Tensor:
    """``(B, P)`` booleans: which planes of each stack are the centre plane itself."""
    planes = planes_of(y, channels)
    centre = centre_of(y, channels).unsqueeze(1)
    dims = tuple(range(2, planes.ndim))
    return (planes == centre).all(dim=dims)


def with_centre(stack: torch.Tensor, centre: torch.Tensor, copies: torch.Tensor,
                channels: int) -> torch.Tensor:
    """``stack`` with ``centre`` in the centre slot and in every slot ``copies`` marks."""
    planes = planes_of(stack, channels)
    mask = copies.reshape(*copies.shape, *([1] * (planes.ndim - 2))).to(planes.dtype)
    planes = planes * (1 - mask) + centre.unsqueeze(1) * mask
    return planes.reshape(stack.shape)


class StackNormalization:
    """A :class:`Normalization` of ``C`` channels applied to ``C * (2k + 1)``-channel stacks
    (each plane with its channel's scaling); ``C``-channel blocks (targets) as usual."""

    def __init__(self, norm: Normalization) -> None:
        self.norm = norm
        self.channels = len(norm.low)

    def apply(self, block: np.ndarray) -> np.ndarray:
        c = self.channels
        if block.shape[0] == c:
            return self.norm.apply(block)
        planes = block.reshape(block.shape[0] // c, c, *block.shape[1:])
        out = np.stack([self.norm.apply(p) for p in planes])
        return out.reshape(block.shape)

    def invert(self, block: np.ndarray) -> np.ndarray:
        return self.norm.invert(block)

    def scale(self, c: int) -> float:
        return self.norm.scale(c)


def stack_normalization(norm: Normalization, context: int) -> Any:
    """``norm`` itself for context 0, else a :class:`StackNormalization` of it."""
    return StackNormalization(norm) if context else norm


class ContextSource:
    """An image source whose blocks carry the ``2k + 1`` planes around each plane as channels.

    It has the wrapped source's ``info``, ``czyx``, ``n_samples``, ``in_memory`` and
    ``chunks`` (the image's own: patch and block placement do not change); :meth:`read`
    returns ``(C * (2k + 1), Z, Y, X)`` blocks in the input's units.
    """

    def __init__(self, source: Any, context: int, axis: str | None) -> None:
        self.source, self.context, self.axis = source, int(context), axis
        self.info = source.info
        self.in_memory = source.in_memory
        self.chunks = source.chunks
        self.dtype = source.dtype

    @property
    def n_samples(self) -> int:
        return self.source.n_samples

    @property
    def czyx(self) -> tuple[int, int, int, int]:
        return self.source.czyx

    def _sample_neighbours(self, sample: int) -> list[int]:
        shape = self.info.sample_shape
        lead = list(np.unravel_index(sample, shape))
        t_axis = self.info.sample_axes.index("T")
        out = []
        for d in range(-self.context, self.context + 1):
            moved = list(lead)
            moved[t_axis] = reflect_index(int(lead[t_axis]) + d, shape[t_axis])
            out.append(int(np.ravel_multi_index(tuple(moved), shape)))
        return out

    def read(self, sample: int, z: slice = slice(None), y: slice = slice(None),
             x: slice = slice(None)) -> np.ndarray:
        """Block ``(C * (2k + 1), Z, Y, X)`` of one sample, float32, in the input's units."""
        k = self.context
        if self.axis == "T":
            reads: dict[int, np.ndarray] = {}
            planes = []
            for s in self._sample_neighbours(sample):
                if s not in reads:
                    reads[s] = self.source.read(s, z, y, x)
                planes.append(reads[s])
            return np.concatenate(planes, axis=0)
        nz = self.czyx[1]
        zs = np.arange(nz)[z]
        if self.axis != "Z" or nz == 1:
            block = self.source.read(sample, z, y, x)
            return np.concatenate([block] * (2 * k + 1), axis=0)
        wanted = [reflect_index(zs + d, nz) for d in range(-k, k + 1)]
        lo = int(min(w.min() for w in wanted)) if zs.size else 0
        hi = int(max(w.max() for w in wanted)) + 1 if zs.size else 0
        block = self.source.read(sample, slice(lo, hi), y, x)
        return np.concatenate([block[:, w - lo] for w in wanted], axis=0)


def context_source(source: Any, context: int, dims: int) -> Any:
    """``source`` itself for context 0 (or when it already carries context), else a
    :class:`ContextSource` along the image's context axis (:func:`context_axis`)."""
    if not context or isinstance(source, ContextSource):
        return source
    return ContextSource(source, context, context_axis(source.info, dims))


def context_images(images: Any, context: int, dims: int) -> Any:
    """A shallow copy of a :class:`~.collection.SourceSet` whose sources read with context
    (its clean targets, the centre planes, stay as they are); ``images`` for context 0."""
    if not context:
        return images
    out = copy.copy(images)
    out.sources = [context_source(s, context, dims) for s in images.sources]
    return out


class GatheredBlock:
    """A ``(C', Z, Y, X)`` block already holding its context planes, read like a source of
    one sample (out-of-core blocks and assessed crops go through the tile plan this way)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = np.asarray(data, np.float32)
        self.n_samples = 1
        self.czyx = tuple(int(n) for n in self.data.shape)
        self.in_memory = True

    def read(self, sample: int, z: slice = slice(None), y: slice = slice(None),
             x: slice = slice(None)) -> np.ndarray:
        return self.data[:, z, y, x]
