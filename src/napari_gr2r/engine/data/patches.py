"""Training patches: the train/validation split of an image and random normalised patches.

In-memory images are sliced directly; lazy images are sampled from a bounded pool of blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io.axes import AxesInfo
from ..io.chunks import random_start
from ..io.sources import ImageSource
from .normalization import Normalization

MIN_TRAIN_SIDE = 16


@dataclass(frozen=True)
class SamplingPlan:
    """How training draws patches: their shape, augmentation, batches and held-out share.

    ``patch`` is ``(Z, Y, X)``; ``flat_z`` draws one-slice patches for a 2D network;
    ``n_val`` held-out patches are drawn once for validation, in batches of ``batch_size``.
    """

    patch: tuple[int, int, int]
    flat_z: bool
    augment: bool = True
    batch_size: int = 8
    val_fraction: float = 0.1
    n_val: int = 16


@dataclass(frozen=True)
class Region:
    """A part of the image: a range of samples, of rows (Y) and of columns (X)."""

    samples: tuple[int, int]
    rows: tuple[int, int]
    cols: tuple[int, int]

    @property
    def height(self) -> int:
        return self.rows[1] - self.rows[0]

    @property
    def width(self) -> int:
        return self.cols[1] - self.cols[0]


def _held_out(size: int, val_fraction: float, patch: int) -> int:
    """How many rows (or columns) of ``size`` to hold out; 0 when the rest would be too small."""
    held = max(round(val_fraction * size), min(patch, size // 4), 8)
    return held if size - held >= MIN_TRAIN_SIDE else 0


def split_regions(info: AxesInfo, val_fraction: float, patch_y: int,
                  patch_x: int | None = None) -> tuple[Region, Region | None]:
    """Hold out whole samples when there are several, else the last rows or columns.

    A single image is split along the axis where the held-out part takes the smaller share
    of it: the longest axis of an elongated image (the columns of a 16x4096 strip, which has
    too few rows to spare), the rows when both take the same share.
    """
    n, ny, nx = info.n_samples, info.size("Y"), info.size("X")
    everything = Region((0, n), (0, ny), (0, nx))
    if val_fraction <= 0:
        return everything, None
    if n >= 4:
        k = max(1, round(val_fraction * n))
        return Region((0, n - k), (0, ny), (0, nx)), Region((n - k, n), (0, ny), (0, nx))
    rows = _held_out(ny, val_fraction, patch_y)
    cols = _held_out(nx, val_fraction, patch_y if patch_x is None else patch_x)
    if rows and (not cols or rows * nx <= cols * ny):
        return Region((0, n), (0, ny - rows), (0, nx)), Region((0, n), (ny - rows, ny), (0, nx))
    if cols:
        return Region((0, n), (0, ny), (0, nx - cols)), Region((0, n), (0, ny), (nx - cols, nx))
    return everything, None


class PatchSampler:
    """Random normalised patches from one region of an :class:`ImageSource`.

    In-memory images are sliced directly. Lazy images fill a pool of ``pool_blocks`` blocks
    (each a few patches wide) and replace one block every ``refresh_every`` draws, so memory
    stays bounded and only the chunks under the blocks are read.
    """

    def __init__(self, source: ImageSource, norm: Normalization, region: Region,
                 patch: tuple[int, int, int], rng: np.random.Generator, flat_z: bool,
                 target: ImageSource | None = None, augment: bool = True,
                 pool_blocks: int = 16, refresh_every: int = 32) -> None:
        self.source, self.norm, self.region, self.rng = source, norm, region, rng
        self.target = target
        self.flat_z, self.augment = flat_z, augment
        nz = source.czyx[1]
        pz = 1 if flat_z else min(patch[0], nz)
        self.patch = (pz, min(patch[1], region.height), min(patch[2], region.width))
        self.lazy = not source.in_memory
        self._draws = 0
        self.refresh_every = refresh_every
        if self.lazy:
            self._pool = [self._load_block() for _ in range(pool_blocks)]

    def _load_block(self) -> tuple[np.ndarray, np.ndarray | None]:
        nz = self.source.czyx[1]
        pz, py, px = self.patch
        bz = min(nz, 4 if self.flat_z else pz * 2)
        by, bx = min(self.region.height, py * 4), min(self.region.width, px * 4)
        s = int(self.rng.integers(*self.region.samples))
        cz, cy, cx = self.source.chunks or (None, None, None)
        z0 = random_start(self.rng, 0, nz, bz, cz)
        y0 = random_start(self.rng, *self.region.rows, by, cy)
        x0 = random_start(self.rng, *self.region.cols, bx, cx)
        sl = (slice(z0, z0 + bz), slice(y0, y0 + by), slice(x0, x0 + bx))
        noisy = self.norm.apply(self.source.read(s, *sl))
        clean = self.norm.apply(self.target.read(s, *sl)) if self.target is not None else None
        return noisy, clean

    def _crop(self, arrays: tuple[np.ndarray, np.ndarray | None], z0: int, y0: int, x0: int,
              ) -> list[np.ndarray]:
        pz, py, px = self.patch
        out = []
        for a in arrays:
            if a is not None:
                out.append(a[:, z0:z0 + pz, y0:y0 + py, x0:x0 + px])
        return out

    def draw(self) -> list[np.ndarray]:
        """One patch ``(C, Z, Y, X)`` (``Z == 1`` for a 2D network), plus its target if any."""
        pz, py, px = self.patch
        self._draws += 1
        if self.lazy:
            if self._draws % self.refresh_every == 0:
                self._pool[int(self.rng.integers(len(self._pool)))] = self._load_block()
            block = self._pool[int(self.rng.integers(len(self._pool)))]
            _, bz, by, bx = block[0].shape
            z0, y0, x0 = (int(self.rng.integers(b - p + 1)) for b, p in
                          ((bz, pz), (by, py), (bx, px)))
            patches = self._crop(block, z0, y0, x0)
        else:
            nz = self.source.czyx[1]
            s = int(self.rng.integers(*self.region.samples))
            z0 = int(self.rng.integers(nz - pz + 1))
            y0 = self.region.rows[0] + int(self.rng.integers(self.region.height - py + 1))
            x0 = self.region.cols[0] + int(self.rng.integers(self.region.width - px + 1))
            sl = (slice(z0, z0 + pz), slice(y0, y0 + py), slice(x0, x0 + px))
            patches = [self.norm.apply(self.source.read(s, *sl))]
            if self.target is not None:
                patches.append(self.norm.apply(self.target.read(s, *sl)))
        if self.augment:
            patches = self._augment(patches)
        return [np.ascontiguousarray(p) for p in patches]

    def _augment(self, patches: list[np.ndarray]) -> list[np.ndarray]:
        flips = [ax for ax in (-1, -2) if self.rng.random() < 0.5]
        if not self.flat_z and self.patch[0] > 1 and self.rng.random() < 0.5:
            flips.append(-3)
        k = int(self.rng.integers(4)) if self.patch[1] == self.patch[2] else 0
        out = []
        for p in patches:
            if flips:
                p = np.flip(p, axis=flips)
            if k:
                p = np.rot90(p, k, axes=(-2, -1))
            out.append(p)
        return out

    def batch(self, size: int) -> list[np.ndarray]:
        """``size`` patches stacked: ``(B, C, Y, X)`` for 2D, ``(B, C, Z, Y, X)`` for 3D."""
        return stack_draws([self.draw() for _ in range(size)], self.flat_z)


def stack_draws(draws: list[list[np.ndarray]], flat_z: bool) -> list[np.ndarray]:
    """Stack drawn ``(C, Z, Y, X)`` patches (and targets) into batches, dropping Z for 2D."""
    stacked = [np.stack([d[i] for d in draws]) for i in range(len(draws[0]))]
    return [s[:, :, 0] for s in stacked] if flat_z else stacked
