"""The in-process loop of an out-of-core run: blocks through the network, written one by one.

Each block is read with its halo (mirrored beyond the image border), denoised (blocks that fit
in one tile batched together, larger ones through the tile plan of :mod:`..tiling`), cropped
back and written; the block is marked done in the store's record after its chunks are written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from ...data.context import GatheredBlock, context_source, stack_normalization
from ...devices import DeviceBatches, autocast, resolve_device, usable_device
from ...io.sources import ImageSource
from ...model.model import GR2RModel
from ...model.networks import place
from ..tiling import TilePlan, check_result, dihedral_mean, inference_precision, tta_views
from .plan import Block, BlockGrid, fits_one_tile
from .store import ChunkProgress, RunState, check_owner, write_state


def denoise_block(model: GR2RModel, source: ImageSource, grid: BlockGrid, block: Block, *,
                  tile: Any = None, overlap: Any = None, batch_size: int = 4,
                  device: str = "cpu", should_stop: Callable[[], bool] | None = None,
                  precision: str | None = None, tta: bool | int | None = None) -> np.ndarray:
    """Denoise one block: read it with its halo, tile it through the net, crop the halo.

    Returns the block's ``(C, Z, Y, X)`` float32 result in the input's intensity scale.
    """
    data = grid.read(context_source(source, model.config.context, model.dims), block)
    gathered = bool(model.config.context)
    plan = TilePlan(model, GatheredBlock(data) if gathered else ImageSource(data, "CZYX"),
                    tile, overlap, border=0, tta=tta, gathered=gathered, precision=precision)
    result = np.empty((model.channels, *data.shape[1:]), np.float32)
    for _, z, denoised in plan.run(batch_size, device, None, should_stop):
        result[:, z] = denoised
    return result[(slice(None), *grid.crop(block))]


def denoise_blocks(model: GR2RModel, source: ImageSource, grid: BlockGrid, indices: list[int],
                   *, tile: Any = None, overlap: Any = None, batch_size: int = 4,
                   device: str = "cpu", should_stop: Callable[[], bool] | None = None,
                   precision: str | None = None, tta: bool | int | None = None,
                   ) -> Iterator[tuple[Block, np.ndarray]]:
    """Denoise blocks in order, yielding ``(block, (C, Z, Y, X) result)`` for each.

    When a block and its halo fit in one tile, blocks of equal shape go through the network
    together, ``batch_size`` images (2D planes or 3D blocks) at a time: a forward pass over a
    batch costs far less per image than one image at a time. Larger blocks are tiled.
    ``precision``: see :func:`~..tiling.inference_precision`; ``tta``: the views averaged
    (:func:`~..tiling.tta_views`; the model's own by default).
    """
    views = tta_views(tta, model)
    if not fits_one_tile(model, grid, tile):
        for index in indices:
            block = grid[index]
            yield block, denoise_block(model, source, grid, block, tile=tile, overlap=overlap,
                                       batch_size=batch_size, device=device,
                                       should_stop=should_stop, precision=precision,
                                       tta=views)
        return
    net = place(model.net, device).eval()
    arithmetic = autocast(torch.device(device),
                          inference_precision(model, torch.device(device), precision))
    norm = model.normalization
    # with context, each plane's block carries its neighbours (the halo along the context axis)
    source = context_source(source, model.config.context, model.dims)
    norm_in = stack_normalization(norm, model.config.context)
    pending: list[tuple[Block, np.ndarray]] = []
    fitted = DeviceBatches()  # batches the device has no memory for run in parts

    def as_images(data: np.ndarray) -> np.ndarray:
        # (C, Z, Y, X) -> batch items: Z planes of (C, Y, X) for 2D, one (C, Z, Y, X) for 3D
        return np.moveaxis(data, 1, 0) if model.dims == 2 else data[None]

    def flush() -> Iterator[tuple[Block, np.ndarray]]:
        if should_stop is not None and should_stop():
            raise InterruptedError("Denoising was stopped; run it again to resume.")
        images = np.concatenate([as_images(d) for _, d in pending])
        with torch.inference_mode(), arithmetic:
            batch = torch.from_numpy(images).to(device)
            pred = fitted(lambda b: dihedral_mean(net, b, views) if views > 1 else net(b),
                          batch).float().cpu().numpy()
        start = 0
        for block, data in pending:
            n = data.shape[1] if model.dims == 2 else 1
            result = pred[start:start + n]
            start += n
            result = np.moveaxis(result, 0, 1) if model.dims == 2 else result[0]
            yield block, check_result(
                norm.invert(np.ascontiguousarray(result[(slice(None), *grid.crop(block))])),
                f" in block {block.index}")
        pending.clear()

    for index in indices:
        block = grid[index]
        data = norm_in.apply(grid.read(source, block))
        if pending and pending[0][1].shape[1 if model.dims == 2 else 0:] != \
                data.shape[1 if model.dims == 2 else 0:]:
            yield from flush()
        pending.append((block, data))
        images = sum(d.shape[1] if model.dims == 2 else 1 for _, d in pending)
        if images >= batch_size:
            yield from flush()
    if pending:
        yield from flush()


def run_local(model: GR2RModel, source: ImageSource, arr: Any, grid: BlockGrid,
              state: RunState, todo: list[int], *, tile: Any, overlap: Any, batch_size: int,
              device: str, should_stop: Callable[[], bool] | None,
              precision: str | None = None, tta: bool | int | None = None,
              ) -> Iterator[ChunkProgress]:
    """Denoise the blocks ``todo`` in this process into ``arr``, yielding progress per block."""
    done, total = state.done, len(grid)
    skipped = total - len(todo)
    dev = usable_device(model.net, resolve_device(device), model.dims, model.channels)
    if should_stop is not None and should_stop():
        raise InterruptedError("Denoising was stopped; run it again to resume.")
    results = denoise_blocks(model, source, grid, todo, tile=tile, overlap=overlap,
                             batch_size=batch_size, device=dev.type, should_stop=should_stop,
                             precision=precision, tta=tta)
    for n, (block, result) in enumerate(results, 1):
        check_owner(arr, state)  # never write into a store another run has claimed
        arr[grid.out_index(block)] = grid.to_output_layout(result)
        done[block.index] = True
        write_state(arr, state)  # checks the owner again before marking the block done
        yield ChunkProgress(int(done.sum()), total, n, skipped)
