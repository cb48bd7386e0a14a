"""Training on several images: one model from patches of every image.

A :class:`SourceSet` holds one :class:`ImageSource` per image (numpy, dask or zarr arrays, or
paths opened lazily), all with the same axes and channels; their sizes may differ. It gives
the :class:`~napari_gr2r.engine.training.trainer.Trainer` what one image gives it:

- statistics blocks for the normalisation and the noise fit, taken from every image at the
  same rate per pixel (so each image weighs as much as its size; every image gives at least
  a small plane), within a fixed budget of pixels;
- a training sampler that draws each patch from an image chosen in proportion to its
  training pixels, and held-out validation patches from every image (each image's own
  held-out region, as for one image).

With one image everything is exactly what :class:`ImageSource` and :class:`PatchSampler`
do on their own (the same draws from the same random generator).

An image stored in tiny chunks (1x1, single rows) is read into memory once when it fits
(:func:`whole_if_tiny_chunks`): training would otherwise open every chunk again and again.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..errors import InputError
from ..io.axes import AxesInfo
from ..io.formats import read_image
from ..io.sources import (
    IN_MEMORY_LIMIT,
    SMALL_CHUNK,
    ImageSource,
    as_lazy_or_numpy,
    read_or_refuse,
)
from .normalization import Normalization
from .patches import (
    MIN_TRAIN_SIDE,
    PatchSampler,
    Region,
    SamplingPlan,
    split_regions,
    stack_draws,
)

STATISTICS_BUDGET = 8_000_000
"""Pixels (per channel) of all images together that the normalisation and noise fit see."""
MIN_STATISTICS_PIXELS = 128 * 128
"""Each image gives at least this many pixels (or all it has) to the statistics."""


def as_image_list(data: Any) -> list[Any] | None:
    """The images of a collection (a list, tuple or other iterable of arrays or paths), or
    None when ``data`` is one image (an array, or a nested list of numbers)."""
    if hasattr(data, "shape") or isinstance(data, (str, os.PathLike)):
        return None
    if isinstance(data, (list, tuple)):
        items = list(data)
        if not items or not all(_is_image_item(x) for x in items):
            return None  # a nested list of numbers is one image, as before
    elif isinstance(data, Iterable):
        items = list(data)
        bad = [type(x).__name__ for x in items if not _is_image_item(x)]
        if not items or bad:
            raise InputError(
                "A collection of images must hold arrays (numpy, dask, zarr) or image paths"
                + (f", not {bad[0]}." if bad else "; this one is empty.")
            )
    else:
        return None
    return [_open(x) for x in items]


def _is_image_item(item: Any) -> bool:
    return (hasattr(item, "shape") and hasattr(item, "dtype")) or \
        isinstance(item, (str, os.PathLike))


def _open(item: Any) -> Any:
    if isinstance(item, (str, os.PathLike)):
        return read_image(item)[0]
    return item


def whole_if_tiny_chunks(data: Any) -> Any:
    """``data`` read whole into a numpy array when it is stored in tiny chunks (fewer than
    :data:`SMALL_CHUNK` elements each: 1x1, 8x8, single rows) and fits in memory (at most
    :data:`IN_MEMORY_LIMIT` elements); else ``data`` itself.

    Training reads the same pixels many times (statistics, a pool of patch blocks refreshed
    as it goes, validation): from tiny chunks each of those reads opens one chunk every few
    pixels, over and over. Read once, each chunk is opened one time.
    """
    if isinstance(data, np.ndarray) or not hasattr(data, "shape"):
        return data
    chunks = getattr(data, "chunksize", None) or getattr(data, "chunks", None)
    if not isinstance(chunks, tuple) or not chunks or \
            not all(isinstance(c, (int, np.integer)) for c in chunks):
        return data
    if math.prod(chunks) >= SMALL_CHUNK or math.prod(data.shape) > IN_MEMORY_LIMIT:
        return data
    return read_or_refuse(data, ...)


class SourceSet:
    """Several images with the same axes, read like one (see the module's docstring)."""

    def __init__(self, images: list[Any], axes: str, targets: list[Any] | None = None) -> None:
        if not images:
            raise InputError("No images to train on: the collection is empty.")
        self.sources = []
        for i, image in enumerate(images):
            try:
                self.sources.append(ImageSource(whole_if_tiny_chunks(image), axes))
            except InputError as exc:
                raise type(exc)(self._which(i, len(images)) + str(exc)) from None
        first = self.sources[0].info
        for i, source in enumerate(self.sources):
            _, _, ny, nx = source.czyx
            if source.info.n_channels != first.n_channels:
                raise InputError(
                    f"{self._which(i, len(images))}it has {source.info.n_channels} channel(s) "
                    f"and the first image {first.n_channels}; train one model on images with "
                    "the same channels."
                )
            if ny < MIN_TRAIN_SIDE or nx < MIN_TRAIN_SIDE:
                advice = ("Use larger images, or leave this one out." if len(images) > 1 else
                          "Use a larger image, or denoise this one with a model trained on a "
                          "larger image.")
                raise InputError(
                    f"{self._which(i, len(images))}The image is {ny}x{nx} pixels in YX; "
                    f"training needs at least {MIN_TRAIN_SIDE}x{MIN_TRAIN_SIDE}. {advice}"
                )
        self.targets: list[ImageSource] | None = None
        if targets is not None:
            if len(targets) != len(images):
                raise InputError(f"{len(targets)} clean targets for {len(images)} images; give "
                                 "one target per image.")
            self.targets = []
            for i, (target, source) in enumerate(zip(targets, self.sources)):
                target = as_lazy_or_numpy(whole_if_tiny_chunks(target))
                if tuple(target.shape) != tuple(source.info.shape):
                    raise InputError(
                        f"{self._which(i, len(images))}The clean target has shape "
                        f"{tuple(target.shape)}, the noisy image {source.info.shape}; they "
                        "must match."
                    )
                self.targets.append(ImageSource(target, axes))

    @staticmethod
    def _which(i: int, n: int) -> str:
        return f"Image {i + 1} of {n}: " if n > 1 else ""

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def info(self) -> AxesInfo:
        """The first image's axes and shape (axes and channels are those of every image)."""
        return self.sources[0].info

    @property
    def infos(self) -> list[AxesInfo]:
        return [s.info for s in self.sources]

    @property
    def min_z(self) -> int:
        return min(s.czyx[1] for s in self.sources)

    def target(self, i: int) -> ImageSource | None:
        return self.targets[i] if self.targets is not None else None

    # ----------------------------------------------------------------------------------------
    def statistics_blocks(self, rng: np.random.Generator) -> list[np.ndarray]:
        """Blocks ``(C, Z, Y, X)`` for the normalisation and the noise fit, from every image
        at the same rate per pixel of the image (at least one small plane each)."""
        if len(self.sources) == 1:
            return self.sources[0].statistics_blocks(rng)
        per_source = [s.statistics_blocks(rng) for s in self.sources]
        available = [sum(b[0].size for b in blocks) for blocks in per_source]
        sizes = [math.prod(s.czyx[1:]) * s.n_samples for s in self.sources]
        rate = min(STATISTICS_BUDGET / sum(sizes), *(a / n for a, n in zip(available, sizes)))
        out = []
        for blocks, size, have in zip(per_source, sizes, available):
            budget = min(have, max(int(rate * size), MIN_STATISTICS_PIXELS))
            out.extend(_limit_planes(blocks, budget, rng))
        return out

    # ----------------------------------------------------------------------------------------
    def samplers(self, norm: Normalization, plan: SamplingPlan, rng: np.random.Generator,
                 val_seed: int | None = None) -> tuple[Any, list[list[np.ndarray]], int]:
        """The training sampler, the validation batches (arrays; empty without validation)
        and the seed they were drawn with (``val_seed``, or one drawn from ``rng``: a resumed
        run passes its stored seed to get the same batches back)."""
        def val_rng() -> np.random.Generator:
            nonlocal val_seed
            if val_seed is None:
                val_seed = int(rng.integers(2**31))
            return np.random.default_rng(val_seed)

        patch, flat_z, batch_size, n_val = plan.patch, plan.flat_z, plan.batch_size, plan.n_val
        if len(self.sources) == 1:
            source, target = self.sources[0], self.target(0)
            train_region, val_region = split_regions(source.info, plan.val_fraction, *patch[1:])
            sampler = PatchSampler(source, norm, train_region, patch, rng, flat_z=flat_z,
                                   target=target, augment=plan.augment)
            batches = []
            if val_region is not None:
                val_sampler = PatchSampler(source, norm, val_region, patch, val_rng(),
                                           flat_z=flat_z, target=target, augment=False)
                for _ in range(max(1, n_val // batch_size)):
                    batches.append(val_sampler.batch(min(batch_size, n_val)))
            return sampler, batches, val_seed or 0
        regions = [split_regions(s.info, plan.val_fraction, *patch[1:]) for s in self.sources]
        sampler = MultiPatchSampler(self, norm, [r[0] for r in regions], patch, rng, flat_z,
                                    plan.augment)
        held_out = [(i, r[1]) for i, r in enumerate(regions) if r[1] is not None]
        if not held_out:
            return sampler, [], 0
        draw_rng = val_rng()
        val_patch = _common_patch(patch, [self.sources[i] for i, _ in held_out],
                                  [r for _, r in held_out], flat_z)
        count = max(n_val, len(held_out))
        draws: list[list[np.ndarray]] = []
        for k, (i, region) in enumerate(held_out):
            share = count // len(held_out) + (k < count % len(held_out))
            val_sampler = PatchSampler(self.sources[i], norm, region, val_patch, draw_rng,
                                       flat_z=flat_z, target=self.target(i), augment=False,
                                       pool_blocks=1)
            draws.extend(val_sampler.draw() for _ in range(share))
        batches = [stack_draws(draws[start:start + batch_size], flat_z)
                   for start in range(0, len(draws), batch_size)]
        return sampler, batches, val_seed or 0


def _common_patch(patch: tuple[int, int, int], sources: list[ImageSource],
                  regions: list[Region], flat_z: bool) -> tuple[int, int, int]:
    """The largest patch (up to ``patch``) that fits in every region: one shape per batch."""
    pz = 1 if flat_z else min(patch[0], *(s.czyx[1] for s in sources))
    py = min(patch[1], *(r.height for r in regions))
    px = min(patch[2], *(r.width for r in regions))
    return pz, py, px


def _limit_planes(blocks: list[np.ndarray], budget: int,
                  rng: np.random.Generator) -> list[np.ndarray]:
    """Random whole ``(C, 1, Y, X)`` planes of ``blocks`` up to ``budget`` pixels, the last
    one cropped to a random window holding the rest of the budget."""
    planes = [(b, z) for b in blocks for z in range(b.shape[1])]
    out: list[np.ndarray] = []
    used = 0
    for k in rng.permutation(len(planes)):
        block, z = planes[k]
        plane = block[:, z:z + 1]
        ny, nx = plane.shape[-2:]
        left = budget - used
        if ny * nx > left:
            if out and left < 32 * 32:
                break
            h = min(ny, max(16, int(math.sqrt(left))))
            w = min(nx, max(16, left // h))
            y0 = int(rng.integers(ny - h + 1))
            x0 = int(rng.integers(nx - w + 1))
            plane = plane[..., y0:y0 + h, x0:x0 + w]
        out.append(plane)
        used += plane.shape[-1] * plane.shape[-2]
        if used >= budget:
            break
    return out


class MultiPatchSampler:
    """Patches from several images: each from an image chosen in proportion to its training
    pixels, then drawn by that image's own :class:`PatchSampler`."""

    def __init__(self, images: SourceSet, norm: Normalization, regions: list[Region],
                 patch: tuple[int, int, int], rng: np.random.Generator, flat_z: bool,
                 augment: bool) -> None:
        self.rng, self.flat_z = rng, flat_z
        self.patch = _common_patch(patch, images.sources, regions, flat_z)
        pool = max(2, 16 // len(images))  # lazy images: a bounded pool of blocks in all
        self.samplers = [
            PatchSampler(source, norm, region, self.patch, rng, flat_z=flat_z,
                         target=images.target(i), augment=augment, pool_blocks=pool)
            for i, (source, region) in enumerate(zip(images.sources, regions))
        ]
        weights = np.array([(r.samples[1] - r.samples[0]) * r.height * s.czyx[1] * r.width
                            for s, r in zip(images.sources, regions)], dtype=float)
        self.weights = weights / weights.sum()

    def draw(self) -> list[np.ndarray]:
        """One patch ``(C, Z, Y, X)`` from a randomly chosen image, plus its target if any."""
        i = int(self.rng.choice(len(self.samplers), p=self.weights))
        return self.samplers[i].draw()

    def batch(self, size: int) -> list[np.ndarray]:
        """``size`` patches stacked: ``(B, C, Y, X)`` for 2D, ``(B, C, Z, Y, X)`` for 3D."""
        return stack_draws([self.draw() for _ in range(size)], self.flat_z)
