"""A plain function for napari-workflows, napari-assistant and scripts: an image and a model
file in, the denoised image out.

>>> from napari_gr2r import denoise_image
>>> denoised = denoise_image(image, "nuclei.gr2r.pt")              # doctest: +SKIP

The annotations name napari's types as strings (napari is not imported): magicgui and the
napari-assistant resolve them to an image-layer picker and a new image layer. The model file
is loaded once per path (and again only when the file changes), so a workflow
that calls the function for every time point or every file does not reload it each time.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine import GR2RModel

_CACHE: dict[tuple[str, str], tuple[tuple[int, int], GR2RModel]] = {}
_LOCK = threading.Lock()
CACHE_SIZE = 4
"""Models kept loaded (the most recently used)."""


def load_cached_model(model_path: str | os.PathLike, device: str = "cpu") -> GR2RModel:
    """The model in ``model_path``, loaded once and kept while the file is unchanged."""
    from .engine import load_model

    path = Path(model_path).expanduser().resolve()
    stat = path.stat() if path.exists() else None
    key = (str(path), device)
    stamp = (stat.st_mtime_ns, stat.st_size) if stat is not None else (0, 0)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0] == stamp:
            _CACHE[key] = _CACHE.pop(key)  # most recently used last
            return hit[1]
    model = load_model(path, device=device)  # raises a clear error for a missing/bad file
    with _LOCK:
        _CACHE[key] = (stamp, model)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
    return model


def denoise_image(image: napari.types.ImageData, model_path: Path,  # noqa: F821
                  axes: str = "", device: str = "auto") -> napari.types.ImageData:  # noqa: F821
    """Denoise ``image`` with the napari-gr2r model saved in ``model_path``.

    Parameters
    ----------
    image : array
        A numpy, dask or zarr array (a napari image layer's data).
    model_path : path
        A model file written by ``napari-gr2r train``, the widget's *Save model…* or
        :func:`napari_gr2r.engine.save_model`.
    axes : str, optional
        The image's axes; empty (the default): the model's, when the dimensions agree.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``.

    Returns
    -------
    numpy.ndarray
        float32, the image's shape and intensity scale.
    """
    from .engine import denoise

    model = load_cached_model(model_path)
    return denoise(model, image, axes=axes or None, device=device)


def clear_model_cache() -> None:
    """Forget the loaded models (they are loaded again on the next call)."""
    with _LOCK:
        _CACHE.clear()
