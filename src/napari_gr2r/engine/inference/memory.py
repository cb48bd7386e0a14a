"""Tiled inference in memory: any image size, bounded memory, the input's layout back.

The tiles and their blending are planned by :mod:`.tiling`; a tiled result equals the
untiled one to float precision.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ..io.axes import AxesInfo
from ..io.hotpixels import HotPixelWarning, hot_pixel_message
from ..io.outputs import store_location
from ..io.provenance import warn_outside_range
from ..io.sources import ImageSource
from ..model.model import GR2RModel
from .tiling import TilePlan, check_arguments


def denoise_in_memory(model: GR2RModel, data: Any, axes: str | None = None, *,
                      tile: int | tuple[int, ...] | None = None,
                      overlap: int | tuple[int, ...] | None = None,
                      batch_size: int = 4, device: str = "auto",
                      progress: Callable[[int, int], Any] | None = None,
                      should_stop: Callable[[], bool] | None = None,
                      border: int | None = None, tta: bool | int | None = None,
                      check_range: bool = False,
                      precision: str | None = None) -> np.ndarray:
    """Denoise ``data`` with ``model`` into a float32 numpy array of the same shape and axes.

    The arguments are those of :func:`napari_gr2r.engine.denoise` without ``out``; the
    result is in the input's intensity scale. ``border``: pixels mirrored at the image border
    (``None``: the network's halo, :func:`~napari_gr2r.engine.inference.tiling.border_px`; 0: none, the
    network alone, as the BioImage Model Zoo's test of a package runs it). ``tta``: average
    the network over flips and quarter turns of each tile (:func:`~.tiling.dihedral_mean`;
    True: all eight, or the number of views 1, 2, 4 or 8; None: the model's own
    ``config.tta``), for as many times the work.
    ``check_range``: warn (:class:`~napari_gr2r.engine.io.provenance.RangeWarning`, pointing
    at the caller's caller) when the image's values lie mostly outside the model's training
    range, as :func:`napari_gr2r.engine.denoise` does.
    ``precision``: see :func:`~.tiling.inference_precision`. Warns
    (:class:`~napari_gr2r.engine.io.hotpixels.HotPixelWarning`) when isolated hot or dead
    pixels were replaced (the model's ``config.hot_pixels``).
    """
    batch_size = check_arguments(model, tile, overlap, batch_size, device, precision)
    source = model.open_source(data, axes)
    if check_range:
        warn_outside_range(source, model.normalization.low, model.normalization.high,
                           store_location(data), stacklevel=3)
    result = denoise_source(model, source, tile=tile, overlap=overlap, batch_size=batch_size,
                            device=device, progress=progress, should_stop=should_stop,
                            border=border, tta=tta, precision=precision)
    if source.hot_pixels_found:
        warnings.warn(hot_pixel_message(len(source.hot_pixels_found)), HotPixelWarning,
                      stacklevel=2 if not check_range else 3)
    return result


def denoise_source(model: GR2RModel, source: ImageSource, *, tile: Any = None,
                   overlap: Any = None, batch_size: int = 4, device: str = "auto",
                   progress: Callable[[int, int], Any] | None = None,
                   should_stop: Callable[[], bool] | None = None, border: int | None = None,
                   tta: bool | int | None = None, precision: str | None = None) -> np.ndarray:
    """:func:`denoise_in_memory` of an opened source (``model.open_source``), without its
    checks and warnings: the caller reads ``source.hot_pixels_found`` itself."""
    plan = TilePlan(model, source, tile, overlap, border, tta, precision=precision)
    result = np.empty((source.n_samples, *source.czyx), np.float32)
    for sample, z, block in plan.run(batch_size, device, progress, should_stop):
        result[sample, :, z] = block
    return to_input_layout(result, source.info)


def to_input_layout(samples: np.ndarray, info: AxesInfo) -> np.ndarray:
    """``(samples, C, Z, Y, X)`` blocks of an image back in its own shape and axis order."""
    out = samples.reshape(info.sample_shape + info.czyx)
    # drop the C and Z axes the input does not have, then restore the input's axis order
    squeeze = tuple(len(info.sample_shape) + i for i, a in enumerate("CZ") if a not in info.axes)
    out = out.squeeze(axis=squeeze)
    return np.ascontiguousarray(np.transpose(out, np.argsort(info.order)))

