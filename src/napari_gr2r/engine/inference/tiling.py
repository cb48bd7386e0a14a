"""The tile plan and its blending, shared by in-memory and out-of-core denoising.

Tiles start on multiples of the network's down-sampling factor and overlap by at least the
network's receptive field (by default), and each output pixel is blended only from tiles in
which it lies at least ``(overlap - blend) / 2`` from an inner tile border. A tiled result
therefore equals the untiled one to float precision, while memory stays bounded by
``batch_size`` tiles.

The image's Y and X borders are mirrored (``numpy.pad(..., mode="symmetric")``) by
:func:`border_px` before tiling, so pixels near the border see image-like context rather than
the network's zero padding, as the BioImage Model Zoo's runners do; the result is cropped back.
Z is not mirrored: stacks are often thinner than the border, which would multiply the work.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..checks import check_int, check_sizes
from ..config import PRECISIONS
from ..data.context import context_source, stack_normalization
from ..devices import DeviceBatches, autocast, resolve_device, resolve_precision, usable_device
from ..errors import ConfigError, InputError, NumericalError
from ..io.sources import ImageSource
from ..model.model import GR2RModel
from ..model.networks import place

DEFAULT_TILE_2D = 384
DEFAULT_TILE_3D = (32, 128, 128)
BLEND = 16


@dataclass(frozen=True)
class AxisTiling:
    """Tiles along one axis: their ``(start, stop)`` and 1D blending weights."""

    bounds: tuple[tuple[int, int], ...]
    weights: tuple[np.ndarray, ...]


def tile_axis(length: int, tile: int, overlap: int, multiple: int, blend: int = BLEND,
              ) -> AxisTiling:
    """Split ``length`` pixels into tiles of at most ``tile`` with ``overlap`` between them.

    Starts are multiples of ``multiple`` (so pooling grids line up with the untiled image);
    the weights of neighbouring tiles cross over with a raised cosine of width ``blend``
    centred in their overlap, and sum to one at every pixel.

    >>> t = tile_axis(100, 48, 16, 8)
    >>> t.bounds
    ((0, 48), (32, 80), (64, 100))
    >>> bool(np.allclose(sum_weights(t, 100), 1))
    True
    """
    tile = max(multiple, tile // multiple * multiple)
    if length <= tile:
        return AxisTiling(((0, length),), (np.ones(length, np.float32),))
    overlap = min(max(0, overlap // multiple * multiple), tile - multiple)
    step = tile - overlap
    starts = [0]
    while starts[-1] + tile < length:
        starts.append(starts[-1] + step)
    bounds = tuple((s, min(s + tile, length)) for s in starts)
    blend = min(blend, step)  # neighbouring seams must not overlap
    weights = []
    for i, (s, e) in enumerate(bounds):
        w = np.ones(e - s, np.float32)
        pos = np.arange(s, e, dtype=np.float64) + 0.5
        if i > 0:  # seam with the previous tile
            w *= _ramp(pos, bounds[i - 1][1], s, blend, rising=True)
        if i < len(bounds) - 1:  # seam with the next tile
            w *= _ramp(pos, e, bounds[i + 1][0], blend, rising=False)
        weights.append(w)
    return AxisTiling(bounds, tuple(weights))


def _ramp(pos: np.ndarray, prev_end: int, next_start: int, blend: int, rising: bool,
          ) -> np.ndarray:
    centre = (prev_end + next_start) / 2
    half = max(0.5, min(blend, prev_end - next_start) / 2)
    t = np.clip((pos - (centre - half)) / (2 * half), 0, 1)
    up = 0.5 - 0.5 * np.cos(np.pi * t)
    return (up if rising else 1 - up).astype(np.float32)


def sum_weights(tiling: AxisTiling, length: int) -> np.ndarray:
    total = np.zeros(length, np.float32)
    for (s, e), w in zip(tiling.bounds, tiling.weights):
        total[s:e] += w
    return total


def border_px(model: GR2RModel) -> int:
    """Mirrored border (and out-of-core halo) in pixels: the network's receptive radius
    rounded up to its down-sampling factor, so the pooling grid stays aligned."""
    multiple = int(getattr(model.net, "multiple", 1))
    radius = int(getattr(model.net, "receptive_radius", 32))
    return -(-radius // multiple) * multiple


def mirror(image: np.ndarray, pads: list[tuple[int, int]]) -> np.ndarray:
    """``image`` with its trailing axes mirrored outwards by ``pads`` (one pair per axis)."""
    if not any(a or b for a, b in pads):
        return image
    lead = [(0, 0)] * (image.ndim - len(pads))
    return np.pad(image, lead + list(pads), mode="symmetric")


def min_tile(model: GR2RModel) -> int:
    """The smallest tile side accepted: two of the network's down-sampling steps, >= 16."""
    return max(16, 2 * int(getattr(model.net, "multiple", 1)))


def default_tiling(model: GR2RModel, tile: int | tuple[int, ...] | None,
                   overlap: int | tuple[int, ...] | None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Tile and overlap per spatial axis of the network (YX or ZYX), checked.

    Raises :class:`~napari_gr2r.engine.errors.ConfigError` for a tile below
    :func:`min_tile`, a negative overlap, or an overlap not smaller than its tile.
    """
    dims = model.dims
    if tile is None:
        tiles = (DEFAULT_TILE_2D,) * 2 if dims == 2 else DEFAULT_TILE_3D
    else:
        tiles = check_sizes("tile", tile, dims, min_tile(model),
                            what="tile side in pixels; leave it unset for the automatic size")
    if overlap is None:
        radius = getattr(model.net, "receptive_radius", 32)
        exact = 2 * radius + BLEND
        overlaps = tuple(min(exact, t // 2) for t in tiles)
    else:
        overlaps = check_sizes("overlap", overlap, dims, 0, what="pixels shared by tiles")
        for t, o in zip(tiles, overlaps):
            if o >= t:
                raise ConfigError(
                    f"overlap ({o} pixels) must be smaller than the tile ({t} pixels); leave it "
                    "unset for the overlap that makes tiled and untiled results equal."
                )
    return tiles, overlaps


def check_arguments(model: GR2RModel, tile: Any, overlap: Any, batch_size: Any,
                    device: Any, precision: str | None = None) -> int:
    """Check the arguments of a denoising run before anything is read or written; returns
    ``batch_size`` as an int. ``device`` None: the run's device is not known here (a dask
    cluster's workers), and ``precision`` is only checked for its name."""
    if not isinstance(model, GR2RModel):
        raise InputError(
            f"model must be a GR2RModel, not {type(model).__name__}; load one with "
            "engine.load_model(path) or train one with engine.train()."
        )
    default_tiling(model, tile, overlap)
    if precision is not None and precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)} (or None, the "
                          f"model's own), not {precision!r}.")
    if device is not None:
        inference_precision(model, resolve_device(device), precision)
    return check_int("batch_size", batch_size, 1, what="tiles per forward pass, e.g. 4")


def check_result(block: np.ndarray, where: str = "") -> np.ndarray:
    """Raise :class:`NumericalError` when a denoised block holds NaN or infinite values."""
    if not np.isfinite(block).all():
        bad = int(block.size - np.count_nonzero(np.isfinite(block)))
        raise NumericalError(
            f"Denoising gave {bad} NaN or infinite pixel(s){where}, so nothing was returned or "
            "written: the image's intensities may be far outside those the model was trained "
            "on, or the model is damaged. Check the image, or train a model on it."
        )
    return block


_VIEWS = ((False, 0), (False, 2), (True, 0), (True, 2), (False, 1), (False, 3), (True, 1),
          (True, 3))
"""(flip X, quarter turns) of the eight views: the first two, four and eight are groups."""


def tta_views(tta: bool | int | None, model: GR2RModel | None = None) -> int:
    """The number of views ``tta`` asks for: False 1, True 8, or 1, 2, 4 or 8 itself; None:
    the model's own (``TrainConfig.tta``; 1 without a model)."""
    if tta is None:  # a model that is not one is refused where it is used, not here
        return int(getattr(getattr(model, "config", None), "tta", 1))
    if isinstance(tta, bool):
        return 8 if tta else 1
    if tta not in (1, 2, 4, 8):
        raise ConfigError(f"tta must be True, False or the number of views 1, 2, 4 or 8; "
                          f"not {tta!r}.")
    return int(tta)


def dihedral_view(net: torch.nn.Module, batch: torch.Tensor, view: int) -> torch.Tensor:
    """``net`` through one of the eight views (``_VIEWS[view]``): the batch flipped and
    turned, the output turned back; one forward pass."""
    flip, k = _VIEWS[view]
    x = torch.rot90(batch.flip(-1) if flip else batch, k, dims=(-2, -1))
    y = torch.rot90(net(x), -k, dims=(-2, -1))
    return y.flip(-1) if flip else y


def dihedral_mean(net: torch.nn.Module, batch: torch.Tensor, views: int = 8) -> torch.Tensor:
    """The mean of ``net`` over ``views`` flips and quarter turns of the last two axes
    (test-time augmentation), each output turned back: ``views`` forward passes. Two views
    are the image and its half turn; four add its mirror images; eight are all of them."""
    total: torch.Tensor | None = None
    for view in range(views):
        y = dihedral_view(net, batch, view)
        total = y if total is None else total + y
    assert total is not None
    return total / views


def inference_precision(model: GR2RModel, device: torch.device,
                        precision: str | None = None) -> str:
    """The arithmetic of the network's passes when denoising on ``device``.

    ``precision`` None: the precision the model was trained at (``TrainConfig.precision``)
    where ``device`` supports it, else fp32 (a model trained at fp16 on a GPU denoises at
    fp32 on a CPU). A precision asked for is used as it is, or refused with a
    :class:`ConfigError` where ``device`` lacks it (fp16 on a CPU).
    """
    if precision is not None:
        return resolve_precision(precision, device)
    try:
        return resolve_precision(getattr(model.config, "precision", "auto"), device)
    except ConfigError:
        return "fp32"


class TilePlan:
    """Tiles of every sample (and every Z slice, for a 2D model), batched through the net.

    ``border`` pixels are mirrored on each side of Y and X first (by default
    :func:`border_px`; out-of-core blocks, which carry their own halo, pass 0). A model with
    context reads each plane with its neighbours (:mod:`..data.context`), unless
    ``gathered``: the source's blocks hold them already. ``view``: one of the ``tta`` views
    alone (0 to views − 1), the tiled network through that flip and turn; the mean over the
    views of these results is the averaged one (the error estimate probes one view at a time).
    """

    def __init__(self, model: GR2RModel, source: ImageSource, tile: Any, overlap: Any,
                 border: int | None = None, tta: bool | int | None = None,
                 gathered: bool = False, precision: str | None = None,
                 view: int | None = None) -> None:
        self.precision, self.view = precision, view
        context = model.config.context
        if not gathered:
            source = context_source(source, context, model.dims)
        self.norm = stack_normalization(model.normalization, context)
        self.model, self.source, self.views = model, source, tta_views(tta, model)
        tiles, overlaps = default_tiling(model, tile, overlap)
        _, nz, ny, nx = source.czyx
        b = border_px(model) if border is None else border
        self.pads = [(0, 0)] * (model.dims - 2) + [(b, b)] * 2  # per network axis
        lengths = tuple(n + a + e for n, (a, e) in
                        zip((ny, nx) if model.dims == 2 else (nz, ny, nx), self.pads))
        multiple = model.net.multiple
        self.tilings = [tile_axis(n, t, o, multiple) for n, t, o in zip(lengths, tiles, overlaps)]
        planes = nz if model.dims == 2 else 1
        self.units = [(s, z) for s in range(source.n_samples) for z in range(planes)]
        self.n_tiles = len(self.units) * math.prod(len(t.bounds) for t in self.tilings)

    def _tile_boxes(self) -> list[tuple[tuple[int, int], ...]]:
        boxes: list[tuple[tuple[int, int], ...]] = [()]
        for tiling in self.tilings:
            boxes = [b + (bound,) for b in boxes for bound in tiling.bounds]
        return boxes

    def _weight(self, index: tuple[int, ...]) -> np.ndarray:
        w = np.ones((1,) * len(index), np.float32)
        for axis, (tiling, i) in enumerate(zip(self.tilings, index)):
            shape = [1] * len(index)
            shape[axis] = -1
            w = w * tiling.weights[i].reshape(shape)
        return w

    def run(self, batch_size: int, device: str,
            progress: Callable[[int, int], Any] | None,
            should_stop: Callable[[], bool] | None,
            ) -> Iterator[tuple[int, slice | int, np.ndarray]]:
        """Yield ``(sample, z, denoised block (C, [Z,] Y, X))`` for each unit of work."""
        model, source = self.model, self.source
        dev = usable_device(model.net, resolve_device(device), model.dims, model.channels)
        net = place(model.net, dev).eval()
        boxes = self._tile_boxes()
        indices = list(np.ndindex(*(len(t.bounds) for t in self.tilings)))
        done = 0
        fitted = DeviceBatches()  # batches the device has no memory for run in parts

        def forward(batch: torch.Tensor) -> torch.Tensor:
            return (dihedral_view(net, batch, self.view) if self.view is not None
                    else dihedral_mean(net, batch, self.views) if self.views > 1
                    else net(batch))

        with torch.inference_mode(), autocast(dev, inference_precision(model, dev,
                                                                      self.precision)):
            for sample, z in self.units:
                if model.dims == 2:
                    image = source.read(sample, slice(z, z + 1))[:, 0]
                else:
                    image = source.read(sample)
                image = mirror(self.norm.apply(image), self.pads)
                acc = np.zeros((model.channels, *image.shape[1:]), np.float32)
                # group tiles of equal shape so they can share a forward pass
                groups: dict[tuple[int, ...], list[int]] = {}
                for k, box in enumerate(boxes):
                    groups.setdefault(tuple(e - s for s, e in box), []).append(k)
                for members in groups.values():
                    for first in range(0, len(members), batch_size):
                        if should_stop is not None and should_stop():
                            raise InterruptedError("Denoising was stopped.")
                        chunk = members[first:first + batch_size]
                        crops = [image[(slice(None), *(slice(s, e) for s, e in boxes[k]))]
                                 for k in chunk]
                        batch = torch.from_numpy(np.stack(crops)).to(dev)
                        pred = fitted(forward, batch).float().cpu().numpy()
                        for k, p in zip(chunk, pred):
                            box = (slice(None), *(slice(s, e) for s, e in boxes[k]))
                            acc[box] += p * self._weight(indices[k])
                        done += len(chunk)
                        if progress is not None:
                            progress(done, self.n_tiles)
                acc = acc[(..., *(slice(a, n - e) for n, (a, e)
                                  in zip(acc.shape[-model.dims:], self.pads)))]
                yield sample, (z if model.dims == 2 else slice(None)), \
                    check_result(model.normalization.invert(acc))
