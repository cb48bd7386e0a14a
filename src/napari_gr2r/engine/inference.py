"""Tiled inference in memory: any image size, bounded memory, the input's layout back.

The tiles and their blending are planned by :mod:`.tiling`; a tiled result equals the
untiled one to float precision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .model import GR2RModel
from .tiling import TilePlan


def denoise(model: GR2RModel, data: Any, axes: str | None = None, *,
            tile: int | tuple[int, ...] | None = None,
            overlap: int | tuple[int, ...] | None = None,
            batch_size: int = 4, device: str = "auto",
            progress: Callable[[int, int], Any] | None = None,
            should_stop: Callable[[], bool] | None = None,
            out: Any = None, client: Any = None) -> Any:
    """Denoise ``data`` with ``model`` and return a float32 array of the same shape.

    With ``out`` (a path or a zarr array) the image is denoised block by block into that zarr
    store instead of into memory, resumably; see
    :func:`~napari_gr2r.engine.outofcore.denoise_to_zarr`.

    Parameters
    ----------
    model : GR2RModel
    data : numpy, dask or zarr array
        Read block by block; never modified.
    axes : str, optional
        Defaults to the axes the model was trained on (when the dimensions agree).
    tile, overlap : int or tuple, optional
        Tile size and overlap in pixels per network axis (YX, or ZYX for a 3D model).
    batch_size : int
        Tiles per forward pass.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``.
    progress : callable, optional
        Called as ``progress(done, total)`` after each batch of tiles.
    should_stop : callable, optional
        Polled between batches; when it returns True, :class:`InterruptedError` is raised.
    out : path or zarr array, optional
        Write the result into this zarr store, block by block (``progress`` then counts
        blocks), and return the zarr array.
    client : distributed.Client, optional
        With ``out``: run the blocks on this dask cluster.

    Returns
    -------
    numpy.ndarray or zarr.Array
        The denoised image in the input's intensity scale, float32, same shape and axes (a
        zarr array when ``out`` is given).
    """
    if out is not None:
        from .outofcore import denoise_to_zarr

        return denoise_to_zarr(model, data, axes, out, tile=tile, overlap=overlap,
                               batch_size=batch_size, device=device, client=client,
                               progress=progress, should_stop=should_stop)
    if client is not None:
        raise ValueError("client= runs the blocks of an out-of-core run: pass out= as well.")
    source = model.open_source(data, axes)
    plan = TilePlan(model, source, tile, overlap)
    out = np.empty((source.n_samples, *source.czyx), np.float32)
    for sample, z, block in plan.run(batch_size, device, progress, should_stop):
        out[sample, :, z] = block
    info = source.info
    out = out.reshape(info.sample_shape + info.czyx)
    # drop the C and Z axes the input does not have, then restore the input's axis order
    squeeze = tuple(len(info.sample_shape) + i for i, a in enumerate("CZ") if a not in info.axes)
    out = out.squeeze(axis=squeeze)
    return np.ascontiguousarray(np.transpose(out, np.argsort(info.order)))

