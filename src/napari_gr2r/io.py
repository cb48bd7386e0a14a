"""Images for the command line: TIFF or zarr in (lazily), TIFF out, pixel size kept.

Nothing here imports napari or Qt.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def read_image(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Open an image lazily (see :func:`napari_gr2r.engine.sources.open_lazy`).

    Returns
    -------
    data : array-like
        A ``numpy.memmap`` for uncompressed TIFFs, a lazy zarr view of other TIFFs, a zarr
        array for zarr stores (the full-resolution level ``0`` of an OME-Zarr image).
    meta : dict
        ``axes`` (our letters, or None when the file does not say) and, where the file says,
        ``scale`` and ``unit``.
    """
    from .engine.sources import open_lazy

    data, axes = open_lazy(path)
    meta: dict[str, Any] = {"axes": axes}
    if Path(path).suffix.lower() in (".tif", ".tiff"):
        meta.update(_tiff_description(Path(path)))
        shape = meta.pop("shape", None)
        # our TIFFs store planes; the description keeps the array's shape
        if (isinstance(data, np.ndarray) and shape is not None
                and tuple(data.shape) != tuple(shape) and data.size == int(np.prod(shape))):
            data = data.reshape(shape)
    elif isinstance(getattr(data, "attrs", {}).get("axes"), str):
        meta["axes"] = data.attrs["axes"].upper()
    return data, meta


def _tiff_description(path: Path) -> dict[str, Any]:
    """Axes, scale and unit from the JSON description napari-gr2r writes into its TIFFs."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        description = tif.pages[0].description or ""
    if not description.startswith("{"):
        return {}
    try:
        info = json.loads(description)
    except ValueError:
        return {}
    meta = {key: info[key] for key in ("scale", "unit", "shape") if key in info}
    if isinstance(info.get("axes"), str):
        meta["axes"] = info["axes"].upper()
    return meta


def write_image(path: str | os.PathLike, data: np.ndarray, axes: str,
                meta: dict[str, Any] | None = None) -> Path:
    """Write a TIFF atomically: a temporary file in the same folder, then a rename (see
    :mod:`napari_gr2r.engine.atomic`: normal permissions, no stray temporaries)."""
    import tifffile

    from .engine.atomic import atomic_path

    path = Path(path)
    description: dict[str, Any] = {"axes": axes, "shape": list(data.shape)}
    for key in ("scale", "unit"):
        if meta and key in meta:
            description[key] = meta[key]
    # minisblack: planes of intensities, never an RGB guess from a side of 3 or 4 (a
    # 3-slice stack or 3 channels would otherwise be stored as one RGB image)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data, description=json.dumps(description), metadata=None,
                         photometric="minisblack")
    return path
