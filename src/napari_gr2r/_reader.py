"""napari's File > Open for TIFF files and zarr stores, with their pixel size, units and axes:
an npe2 reader.

napari's own reader gives a Fiji hyperstack, an OME-TIFF or an OME-Zarr image a pixel size of
1 and no axis names, so the widget has to guess the axes from the shape and the result keeps
no pixel size. This reader opens the file through :func:`napari_gr2r.engine.io.formats.
read_image`, the command line's reader: a TIFF into memory up to :data:`LARGE_BYTES` (the
widget denoises such a layer in memory), a larger one and every zarr store lazily (read
chunk by chunk as napari shows them; the widget denoises them block by block into a zarr
store), each channel its own layer (napari's ``channel_axis``, named as Fiji names split
channels: ``C1-name``, ``C2-name``...), the other axes
named (``t``, ``z``, ``y``, ``x``), scaled (the pixel size, the time between frames) and in
their units; an 8-bit colour image opens as one RGB layer; an OME-Zarr image with
lower-resolution levels opens as one multiscale layer. A file it cannot read gets the command
line's one line saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

SUFFIXES = (".tif", ".tiff", ".btf", ".lsm", ".zarr")
"""What the reader opens: the TIFFs and zarr stores the engine reads (``napari.yaml``'s
``filename_patterns``)."""
SPATIAL = "ZYX"
LARGE_BYTES = 256 * 2**20
"""A TIFF up to this size opens in memory, a larger one lazily; the widget denoises in-memory
layers above it into a zarr store, like dask, zarr and multiscale layers."""
LayerData = tuple[Any, dict[str, Any], str]


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """The reader for one TIFF file or zarr store. napari calls this for each file it opens,
    before asking which reader to use, so it imports nothing (the engine imports torch)."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    return read_layers if str(path).lower().rstrip("/\\").endswith(SUFFIXES) else None


def read_layers(path: str | list[str]) -> list[LayerData]:
    """The layers of one TIFF file or zarr store (see the module's description)."""
    return [layer_data(path[0] if isinstance(path, list) else path)]


def layer_data(path: str) -> LayerData:
    """``(data, add_image keyword arguments, "image")`` for the image file ``path``.

    Raises :class:`~napari_gr2r.engine.GR2RError` (one line) when the file cannot be read.
    """
    from napari_gr2r.engine.io.formats import read_image, stem_of, suffix_of
    from napari_gr2r.engine.io.omezarr import image_levels

    data, meta = read_image(path)
    if suffix_of(path).endswith(".zarr"):
        levels = image_levels(path, data)
        data = [_lazy(level) for level in levels] if len(levels) > 1 else _lazy(data)
    elif _nbytes(data) <= LARGE_BYTES:
        data = np.asarray(data)  # a memory map or a compressed TIFF's chunks, read once
    elif isinstance(data, np.ndarray):  # a memory map: dask keeps napari's channel split lazy
        data = _planes(data, path)
    else:  # a compressed TIFF, read chunk by chunk
        data = _lazy(data)
    axes = meta.get("axes") or ""
    kwargs: dict[str, Any] = {"name": stem_of(path)}
    full = data[0] if isinstance(data, list) else data
    shape = full.shape
    if len(axes) != len(shape):
        return data, kwargs, "image"
    kept = axes
    if axes.endswith("C") and shape[-1] in (3, 4) and full.dtype == np.uint8:
        kwargs["rgb"] = True  # a colour image: one RGB layer, as napari's own reader gives it
        kept = axes[:-1]
    elif "C" in axes:
        kwargs["channel_axis"] = axes.index("C")
        kept = axes.replace("C", "")
        channels = shape[kwargs["channel_axis"]]
        if channels > 1:
            kwargs["name"] = [f"C{c + 1}-{kwargs['name']}" for c in range(channels)]
    scale = meta.get("scale")
    if scale is not None and len(scale) == len(axes):
        kwargs["scale"] = [float(s) for a, s in zip(axes, scale) if a in kept]
    units = {a: meta.get("unit") or "pixel" for a in SPATIAL}
    units["T"] = meta.get("time_unit") or "pixel"
    kwargs["units"] = tuple(units.get(a, "pixel") for a in kept)
    kwargs["axis_labels"] = tuple(a.lower() for a in kept)
    return data, kwargs, "image"


def _nbytes(array: Any) -> int:
    return int(np.prod(array.shape, dtype=np.int64)) * np.dtype(array.dtype).itemsize


class _Pages:
    """A memory map dask does not see as a numpy array: dask copies a numpy array into its
    chunks (and hashes it for their name) when it wraps it, which reads the whole file."""

    def __init__(self, pages: np.ndarray) -> None:
        self._pages = pages
        self.shape, self.dtype, self.ndim = pages.shape, pages.dtype, pages.ndim

    def __getitem__(self, index: Any) -> np.ndarray:
        return np.array(self._pages[index])


def _planes(pages: np.ndarray, path: str) -> Any:
    """A dask array of one plane per chunk over a TIFF's memory map, read as napari shows it."""
    import os

    import dask.array as da

    stat = os.stat(path)
    return da.from_array(_Pages(pages), chunks=(1,) * (pages.ndim - 2) + pages.shape[-2:],
                         name=f"tiff-{os.path.abspath(path)}-{stat.st_mtime_ns}-{stat.st_size}",
                         meta=np.empty((0,) * pages.ndim, pages.dtype))


def _lazy(array: Any) -> Any:
    """A dask array over a zarr array: napari reads the chunks it shows, and a store being
    written (a result) shows what has been written each time it is refreshed."""
    import dask.array as da

    return da.from_zarr(array)
