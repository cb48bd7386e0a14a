"""The top-level functions: train a model on an image, denoise an image with a model.

:func:`denoise` chooses between denoising into memory (:mod:`.inference`) and block by
block into a zarr store (:mod:`.outofcore`); neither of those modules knows of the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .config import TrainConfig
from .errors import ConfigError
from .events import TrainEvent
from .inference import denoise_in_memory
from .model import GR2RModel
from .outofcore import denoise_to_zarr
from .training import Trainer


def train(data: Any, axes: str, config: TrainConfig | None = None, *, target: Any = None,
          model: GR2RModel | None = None, device: str = "auto",
          callback: Callable[[TrainEvent], Any] | None = None) -> GR2RModel:
    """Train a denoiser on ``data`` and return it (see :class:`Trainer` for the arguments).

    Examples
    --------
    >>> cfg = TrainConfig.from_preset("fast", steps=300)               # doctest: +SKIP
    >>> model = train(noisy, axes="YX", config=cfg)                    # doctest: +SKIP
    """
    trainer = Trainer(data, axes, config, target=target, model=model, device=device)
    return trainer.fit(callback)


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
        return denoise_to_zarr(model, data, axes, out, tile=tile, overlap=overlap,
                               batch_size=batch_size, device=device, client=client,
                               progress=progress, should_stop=should_stop)
    if client is not None:
        raise ConfigError("client= runs the blocks of an out-of-core run: pass out= as well.")
    return denoise_in_memory(model, data, axes, tile=tile, overlap=overlap,
                             batch_size=batch_size, device=device, progress=progress,
                             should_stop=should_stop)
