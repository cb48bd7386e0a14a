"""How :func:`~napari_gr2r.engine.quality.estimate.assess` runs the denoiser it assesses: a
model's tiled inference as ``denoise`` runs it (the mean over its flips and turns, or one of
them alone, which the probes of the error estimate go through), any callable as it is, and a
model with context on the centre planes of a stack, its neighbours as read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..data.context import GatheredBlock, centre_copies, with_centre
from ..inference.tiling import TilePlan, check_arguments
from ..io.sources import ImageSource
from ..model.model import GR2RModel

Denoiser = Callable[..., np.ndarray]
"""A denoiser as :func:`assess` calls it: a ``(C, Z, Y, X)`` float32 block in the input's
intensity units in, the denoised block of the same shape out; a model's (``model_denoiser``)
also takes the index of one of its views."""


def denoiser_for(model: GR2RModel | Denoiser, noisy: Any, axes: str | None, tile: Any,
                 batch_size: int, device: str, should_stop: Callable[[], bool] | None,
                 views: int = 1) -> tuple[ImageSource, GR2RModel | None, Denoiser, str]:
    """The image source, the model (None for a plain callable), the denoiser (a model's
    averages ``views`` flips and turns) and its name."""
    if isinstance(model, GR2RModel):
        source = model.open_source(noisy, axes)
        net_model: GR2RModel | None = model
        denoiser = model_denoiser(model, tile, batch_size, device, views)
        name = repr(model)
    else:
        if axes is None:
            raise ValueError("axes= is needed to assess a denoiser that is not a GR2RModel")
        source = ImageSource(noisy, axes)
        net_model, denoiser, name = None, model, getattr(model, "__name__", repr(model))
    if should_stop is None:
        return source, net_model, denoiser, name
    plain = denoiser

    def stoppable(block: np.ndarray, *view: int) -> np.ndarray:
        if should_stop():
            raise InterruptedError("The assessment was stopped.")
        return plain(block, *view)

    return source, net_model, stoppable, name


def model_denoiser(model: GR2RModel, tile: Any, batch_size: int, device: str,
                    views: int = 1) -> Denoiser:
    """The model's tiled inference of a ``(C, Z, Y, X)`` block, as ``denoise`` runs it:
    ``run(block)`` the mean over ``views``, ``run(block, v)`` the network through view ``v``
    alone."""
    batch_size = check_arguments(model, tile, None, batch_size, device, None)

    def run(block: np.ndarray, view: int | None = None) -> np.ndarray:
        # with context, a block of planes with their neighbours as channels in, the centre
        # planes out
        context = bool(model.config.context)
        source = GatheredBlock(block) if context else model.open_source(block, "CZYX")
        if not context:  # read from the assessed image's source, its hot pixels replaced
            source.hot_pixels = None
        plan = TilePlan(model, source, tile, None, tta=views,  # type: ignore[arg-type]
                        gathered=context, view=view)
        out = np.empty((model.channels, *block.shape[1:]), np.float32)
        for _, z, denoised in plan.run(batch_size, device, None, None):
            out[:, z] = denoised
        return out

    return run


def around(denoiser: Denoiser, stack: np.ndarray, channels: int) -> Denoiser:
    """A denoiser of the centre planes of ``stack`` (``(C', Z, Y, X)``, neighbouring planes
    as channels): the centre given (a probed copy, say) replaces the stack's centre plane and
    the slots that are copies of it, the neighbours stay as read."""
    planes = torch.from_numpy(np.ascontiguousarray(np.moveaxis(stack, 1, 0)))
    copies = centre_copies(planes, channels)

    def run(centre: np.ndarray, *view: int) -> np.ndarray:
        moved = with_centre(planes, torch.from_numpy(np.ascontiguousarray(
            np.moveaxis(centre, 1, 0))), copies, channels)
        return denoiser(np.ascontiguousarray(np.moveaxis(moved.numpy(), 0, 1)), *view)

    return run
