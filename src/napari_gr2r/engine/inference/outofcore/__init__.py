"""Out-of-core denoising: a lazy image in, a zarr store out, chunk by chunk, resumable.

The output is cut into blocks aligned with its zarr chunks. Each block is denoised on its own:
the input block is read with a halo of the network's receptive radius (rounded up to the
network's down-sampling factor), denoised with the tile plan of
:mod:`..tiling`, cropped back to the block and written. Block origins are multiples of the
down-sampling factor and the halo covers the receptive field, so the result equals the
in-memory result to float precision, while memory holds one block (plus its halo) at a time.

A block is marked done in the output array's attributes only after its chunks are written; a
second call with the same model and output skips the blocks already done, so an interrupted
run resumes where it stopped. With a ``dask.distributed`` client the blocks run as tasks on
the cluster's workers: the model is sent once to every worker, each task reads its block from
the input, writes its chunks to the shared output store and returns, and the client records
the finished blocks.

Modules: :mod:`.plan` (the block grid), :mod:`.store` (the output store's bookkeeping),
:mod:`.local` (blocks in this process), :mod:`.distributed` (blocks on a dask cluster) and
:mod:`.runner` (the public functions, which choose between the two).

>>> arr = denoise_to_zarr(model, "big.ome.zarr", "ZYX", "big-denoised.zarr")  # doctest: +SKIP
>>> layer_data = dask.array.from_zarr(arr)                                     # doctest: +SKIP
"""

from ...io.sources import open_lazy
from .plan import Block, BlockGrid, plan_blocks
from .runner import denoise_lazy, denoise_to_zarr, iter_denoise_to_zarr
from .store import STATE_KEY, ChunkProgress, model_fingerprint, read_state

__all__ = [
    "STATE_KEY",
    "Block",
    "BlockGrid",
    "ChunkProgress",
    "denoise_lazy",
    "denoise_to_zarr",
    "iter_denoise_to_zarr",
    "model_fingerprint",
    "open_lazy",
    "plan_blocks",
    "read_state",
]
