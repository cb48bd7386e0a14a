"""The top-level functions: train a model on an image, denoise an image with a model.

:func:`denoise` chooses between denoising into memory (:mod:`.inference`) and block by
block into a zarr store (:mod:`.outofcore`); neither of those modules knows of the other.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .config import TrainConfig
from .errors import ConfigError
from .inference.memory import denoise_in_memory
from .inference.outofcore import denoise_to_zarr
from .inference.tiling import tta_views
from .model.model import GR2RModel
from .noise.calibration import NoiseCalibration
from .training.events import TrainEvent
from .training.trainer import Trainer


def train(data: Any, axes: str, config: TrainConfig | None = None, *, target: Any = None,
          model: GR2RModel | None = None, device: str = "auto",
          callback: Callable[[TrainEvent], Any] | None = None,
          checkpoint_path: str | os.PathLike | None = None,
          resume: bool = False, distributed: bool | None = None,
          noise: NoiseCalibration | None = None) -> GR2RModel:
    """Train a denoiser on a noisy image, without clean images, and return it.

    A shortcut for ``Trainer(data, axes, config, ...).fit(callback)``; use :class:`Trainer`
    to iterate over the events yourself or to stop training from another thread.

    Parameters
    ----------
    data : numpy, dask or zarr array
        The noisy image, any size and dtype (integer or float); never modified. Lazy arrays
        are read a block at a time.
    axes : str
        One letter per dimension: ``T`` or ``S`` (independent samples), ``C`` (channels),
        ``Z``, ``Y``, ``X``; e.g. ``"YX"``, ``"ZYX"``, ``"TYX"``, ``"YXC"``, ``"CZYX"``.
    config : TrainConfig, optional
        Method, network, patches, steps, optimiser. Default: ``TrainConfig()``, the stable
        ``gr2r`` method with the ``balanced`` preset; :meth:`TrainConfig.from_preset` gives
        the others (``"fast"`` for a laptop CPU).
    target : array, optional
        The clean image, same shape, for the supervised ``method="n2c"`` only.
    model : GR2RModel, optional
        A model (trained here or loaded with :func:`load_model`) to train further: its
        weights, optimiser state, step count and history go on; by default for
        ``config.steps`` more steps (see ``resume``).
    device : str
        ``"auto"`` (CUDA, then Apple MPS, then the CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``, ``"mps"``.
    callback : callable, optional
        Called on the calling thread with every event training yields, in order:
        :class:`TrainingStarted` once, :class:`TrainingProgress` every ``config.event_every``
        steps (losses, validation loss, learning rate, patches per second, time left),
        :class:`CollapseDetected` if the network slides towards the identity,
        :class:`CheckpointSaved` after each write to ``checkpoint_path``, and
        :class:`TrainingFinished` last. Its return value is ignored; an exception it raises
        ends training and propagates.
    checkpoint_path : path, optional
        Write the run to this model file while it trains (every ``config.checkpoint_every``
        steps, by default every two minutes, and at the end), atomically: a crash leaves a
        loadable file at most one interval behind, which ``resume=True`` continues.
    resume : bool
        With ``model`` loaded from such a file: continue its unfinished run where it stopped,
        up to step ``config.steps`` of that run (see :class:`Trainer`).
    distributed : bool or None
        In a script started by ``torchrun``: train one model with the other processes
        (DistributedDataParallel, gradients averaged; rank 0 validates, checkpoints and holds
        the best weights, which every rank gets at the end). None (default) detects torchrun;
        False trains alone.
    noise : NoiseCalibration, optional
        The noise from a calibration (:func:`calibrate_noise`) instead of a fit on ``data``:
        training generates its noise with this variance function and correlation, and the
        model file records it.

    Returns
    -------
    GR2RModel
        The model with the best weights seen (lowest validation loss; the last ones without
        validation), ready for :func:`denoise` and :func:`save_model`.

    Examples
    --------
    >>> cfg = TrainConfig.from_preset("fast", steps=300)               # doctest: +SKIP
    >>> model = train(noisy, axes="YX", config=cfg, callback=print)    # doctest: +SKIP
    """
    trainer = Trainer(data, axes, config, target=target, model=model, device=device,
                      checkpoint_path=checkpoint_path, resume=resume, distributed=distributed,
                      noise=noise)
    return trainer.fit(callback)


def denoise(model: GR2RModel, data: Any, axes: str | None = None, *,
            tile: int | tuple[int, ...] | None = None,
            overlap: int | tuple[int, ...] | None = None,
            batch_size: int = 4, device: str = "auto",
            progress: Callable[[int, int], Any] | None = None,
            should_stop: Callable[[], bool] | None = None,
            out: Any = None, client: Any = None, tta: bool | int | None = None,
            precision: str | None = None) -> Any:
    """Denoise ``data`` with ``model`` and return a float32 array of the same shape.

    With ``out`` (a path or a zarr array) the image is denoised block by block into that zarr
    store instead of into memory, resumably; see
    :func:`~napari_gr2r.engine.inference.outofcore.denoise_to_zarr`.

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
    tta : bool, int or None
        Test-time augmentation: average the network over the eight flips and quarter turns
        of each tile (True or 8), or over 2 (the tile and its half turn) or 4 of them, for as
        many times the inference work; 1 or False: one pass. None (default): the model's own
        (``model.config.tta``: 8 for the ``fast`` and ``balanced`` presets, 1 for ``quality``
        and for model files written before it), in memory and into ``out`` alike.
    precision : str, optional
        The arithmetic of the network's passes: by default the model's own (its
        ``config.precision``, where the device has it, else fp32); ``"fp32"``, ``"bf16"``
        (autocast, CPUs and recent GPUs), ``"fp16"`` (CUDA GPUs only: refused elsewhere) or
        ``"auto"`` (bf16 on a CUDA GPU that has it, else fp32). The result is float32 either
        way.

    Returns
    -------
    numpy.ndarray or zarr.Array
        The denoised image in the input's intensity scale, float32, same shape and axes (a
        zarr array when ``out`` is given).

    Warns
    -----
    napari_gr2r.engine.io.provenance.RangeWarning
        When the image's values lie mostly outside the range the model was trained on: the
        result may then be wrong (train a model on images like this one).
    napari_gr2r.engine.io.hotpixels.HotPixelWarning
        When isolated pixels far above or below all their neighbours (hot or dead camera
        pixels) were replaced by their neighbours' median before denoising, as the model was
        trained (``config.hot_pixels``); the count is in the message.
    """
    tta = tta_views(tta, model)  # a value out of range fails here, before any work
    if out is not None:
        return denoise_to_zarr(model, data, axes, out, tile=tile, overlap=overlap,
                               batch_size=batch_size, device=device, client=client,
                               progress=progress, should_stop=should_stop,
                               precision=precision, tta=tta)
    if client is not None:
        raise ConfigError("client= runs the blocks of an out-of-core run: pass out= as well.")
    return denoise_in_memory(model, data, axes, tile=tile, overlap=overlap,
                             batch_size=batch_size, device=device, progress=progress,
                             should_stop=should_stop, tta=tta, check_range=True,
                             precision=precision)
