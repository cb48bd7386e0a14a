"""Block planning for out-of-core runs: the grid of output blocks and the halo of each.

Blocks follow the output's zarr chunks (or a given size), start on multiples of the
network's down-sampling factor, and are read with a halo covering the receptive field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...checks import check_sizes
from ...errors import InputError
from ...io.axes import AxesInfo
from ...model.model import GR2RModel
from ..tiling import border_px, default_tiling, mirror

MAX_Z_BLOCK_2D = 16


@dataclass(frozen=True)
class Block:
    """One block of the output: a sample and a (Z, Y, X) box, in canonical coordinates."""

    index: int
    sample: int
    box: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class BlockGrid:
    """Blocks covering ``(samples, Z, Y, X)``, with the halo each one is read with."""

    info: AxesInfo
    block: tuple[int, int, int]
    halo: tuple[int, int, int]

    @property
    def counts(self) -> tuple[int, int, int, int]:
        _, nz, ny, nx = self.info.czyx
        return (self.info.n_samples, *(math.ceil(n / b) for n, b in zip((nz, ny, nx), self.block)))

    def __len__(self) -> int:
        return math.prod(self.counts)

    def __getitem__(self, index: int) -> Block:
        s, iz, iy, ix = np.unravel_index(index, self.counts)
        sizes = self.info.czyx[1:]
        box = tuple((int(i) * b, min((int(i) + 1) * b, n))
                    for i, b, n in zip((iz, iy, ix), self.block, sizes))
        return Block(index, int(s), box)  # type: ignore[arg-type]

    def read_box(self, block: Block) -> tuple[tuple[int, int], ...]:
        """The block with its halo, clipped to the image."""
        sizes = self.info.czyx[1:]
        return tuple((max(0, a - h), min(n, b + h))
                     for (a, b), h, n in zip(block.box, self.halo, sizes))

    def _pads(self, block: Block) -> list[tuple[int, int]]:
        # Y and X: the halo beyond the image border is mirrored, as tiling mirrors the border
        read = self.read_box(block)
        return [(0, 0)] + [(h - (a - r0), h - (r1 - b)) for (a, b), (r0, r1), h
                           in zip(block.box[1:], read[1:], self.halo[1:])]

    def read(self, source: Any, block: Block) -> np.ndarray:
        """The block ``(C, Z, Y, X)`` with its halo: read from the image where it lies inside,
        mirrored outwards in Y and X (as :mod:`..tiling` mirrors the image border) where not."""
        data = source.read(block.sample, *(slice(a, b) for a, b in self.read_box(block)))
        return mirror(data, self._pads(block))

    def crop(self, block: Block) -> tuple[slice, ...]:
        """Where the block lies in what :meth:`read` returns (Z, Y, X)."""
        return tuple(slice(a - r0 + p, b - r0 + p) for (a, b), (r0, _), (p, _)
                     in zip(block.box, self.read_box(block), self._pads(block)))

    def out_index(self, block: Block) -> tuple[Any, ...]:
        """Where the block goes in the output array (which has the input's axes)."""
        info = self.info
        lead = np.unravel_index(block.sample, info.sample_shape) if info.sample_shape else ()
        lead_iter = iter(int(i) for i in lead)
        spatial = dict(zip("ZYX", (slice(a, b) for a, b in block.box)))
        index = []
        for letter in info.axes:
            if letter in "TS":
                index.append(next(lead_iter))
            elif letter == "C":
                index.append(slice(None))
            else:
                index.append(spatial[letter])
        return tuple(index)

    def to_output_layout(self, data: np.ndarray) -> np.ndarray:
        """``(C, Z, Y, X)`` block data in the order of the input's non-sample axes."""
        axes = self.info.axes
        present = [a for a in "CZYX" if a in axes]
        squeeze = tuple(i for i, a in enumerate("CZ") if a not in axes)
        data = data.squeeze(axis=squeeze) if squeeze else data
        wanted = [a for a in axes if a in "CZYX"]
        return np.transpose(data, [present.index(a) for a in wanted])


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _lcm(a: int, b: int) -> int:
    return a * b // math.gcd(a, b)


def input_z_chunk(data: Any, info: AxesInfo) -> int | None:
    chunks = getattr(data, "chunksize", None) or getattr(data, "chunks", None)
    if "Z" not in info.axes or not isinstance(chunks, tuple) or len(chunks) != len(info.shape):
        return None
    value = chunks[info.axes.index("Z")]
    return int(value) if isinstance(value, (int, np.integer)) else None


def check_chunks(model: GR2RModel, chunks: Any) -> tuple[int, ...]:
    """``chunks`` (one int, or one per network axis) as a tuple of positive ints."""
    return check_sizes("chunks", chunks, model.dims, 1,
                       what="block side in pixels; leave it unset for the automatic size")


def plan_blocks(model: GR2RModel, info: AxesInfo, tile: Any = None, chunks: Any = None,
                out_chunks: tuple[int, ...] | None = None, input_z_chunk: int | None = None,
                ) -> BlockGrid:
    """The block grid for an image: block sizes, and the halo read around each block.

    ``chunks`` (int, or per axis of the network: YX or ZYX) sets the block size; an existing
    output's ``out_chunks`` (in the input's axes) is followed instead, rounded up to whole
    multiples of the network's down-sampling factor. By default a block plus its halo makes
    one inference tile.
    """
    multiple = int(getattr(model.net, "multiple", 1))
    halo_px = border_px(model)
    _, nz, ny, nx = info.czyx
    tiles, _ = default_tiling(model, tile, None)
    if model.dims == 2:
        halo = (0, halo_px, halo_px)
        tiles = (1, *tiles)
    else:
        halo = (halo_px,) * 3
    if out_chunks is not None:
        for letter, size in zip(info.axes, out_chunks):
            if letter in "TS" and size != 1:
                raise InputError(
                    f"The output array has chunks of {size} along the sample axis {letter}; "
                    "blocks are written one sample at a time, so that axis needs chunks of 1."
                )
            if letter == "C" and size != info.n_channels:
                raise InputError(
                    f"The output array splits the {info.n_channels} channels into chunks of "
                    f"{size}; all channels of a pixel are written together, so use one chunk "
                    "along C."
                )
        by_letter = {a: int(c) for a, c in zip(info.axes, out_chunks)}
        block = [by_letter.get("Z", 1), by_letter["Y"], by_letter["X"]]
        spatial = range(1, 3) if model.dims == 2 else range(3)
        for i in spatial:
            block[i] = _lcm(block[i], multiple)
    elif chunks is not None:
        values = tuple(_round_up(v, multiple) for v in check_chunks(model, chunks))
        block = [1, *values] if model.dims == 2 else list(values)
    else:
        block = [max(_round_up(max(t - 2 * h, t // 2), multiple), multiple)
                 for t, h in zip(tiles, halo)]
        if model.dims == 2:
            block[0] = min(max(1, input_z_chunk or 1), MAX_Z_BLOCK_2D)
    block = [min(b, _round_up(n, multiple) if i or model.dims == 3 else n)
             for i, (b, n) in enumerate(zip(block, (nz, ny, nx)))]
    return BlockGrid(info, tuple(int(b) for b in block), halo)  # type: ignore[arg-type]


def fits_one_tile(model: GR2RModel, grid: BlockGrid, tile: Any) -> bool:
    """Whether a full block plus its halo goes through the network whole (and batched).

    True when it fits in a tile, or, with the default tile, when it holds at most twice a
    tile's pixels (deep networks have halos wider than a tile's margin).
    """
    tiles, _ = default_tiling(model, tile, None)
    sizes = [b + 2 * h for b, h in zip(grid.block, grid.halo)][-model.dims:]
    if all(s <= t for s, t in zip(sizes, tiles)):
        return True
    return tile is None and math.prod(sizes) <= 2 * math.prod(tiles)
