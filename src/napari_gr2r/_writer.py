"""napari's File > Save for image layers, as a TIFF that keeps the pixel size: an npe2 writer.

napari's own TIFF writer saves the pixels only, so a denoised layer saved with it opens
anywhere (Fiji, napari, napari-gr2r) at a pixel size of 1. This writer saves the layer through
:func:`napari_gr2r.engine.write_image`, the writer of the command line's results: an ImageJ
hyperstack (or an OME-TIFF for ``.ome.tif``) with the layer's scale and length unit, its axes
read as the widget reads them (:func:`napari_gr2r._qt._axes.axes_guess`: the layer's axis
labels, then the file's metadata, then the shape and units), written atomically.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np


def write_image_layer(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one image layer (its full resolution for a multiscale one) to ``path``."""
    from napari_gr2r import engine
    from napari_gr2r._qt._axes import axes_guess
    from napari_gr2r._qt._layers import layer_pixel_size

    multiscale = bool(meta.get("multiscale"))
    full = data[0] if multiscale else data
    ndim = len(full.shape) - int(bool(meta.get("rgb")))
    layer = SimpleNamespace(  # what the widget reads of a layer, from napari's description of it
        data=full, multiscale=False, rgb=bool(meta.get("rgb")),
        scale=tuple(meta.get("scale") or (1.0,) * ndim),
        units=tuple(meta.get("units") or ()), axis_labels=tuple(meta.get("axis_labels") or ()),
        metadata=dict(meta.get("metadata") or {}), name=meta.get("name", "image"))
    axes = axes_guess(layer).axes
    _check_fits_in_memory(full, path)
    written = engine.write_image(path, np.asarray(full), axes, layer_pixel_size(layer, axes))
    return [str(written)]


def _check_fits_in_memory(data: Any, path: str) -> None:
    """Refuse, in one line, a lazy layer (dask, zarr) that would not fit in half the free
    memory once read: a TIFF is written from an array in memory."""
    import psutil

    if isinstance(data, np.ndarray):
        return
    nbytes = int(np.prod(data.shape)) * np.dtype(data.dtype).itemsize
    free = psutil.virtual_memory().available
    if nbytes > free // 2:
        raise MemoryError(
            f"Not saved to {path}: the layer is {nbytes / 2**30:.1f} GiB once read, more than "
            f"half the free memory ({free / 2**30:.1f} GiB). A large layer the widget denoised "
            "is already saved, in the zarr store it was denoised into."
        )
