"""napari-gr2r: self-supervised GR2R denoising for microscopy, in napari and headless.

Importing this package loads neither napari nor Qt nor torch; use :mod:`napari_gr2r.engine`
for the Python API, and :func:`denoise_image` (from :mod:`napari_gr2r.workflows`, loaded on
first use) for an image and a model file in, the denoised image out.
"""

from typing import Any

from ._version import __version__

__all__ = ["__version__", "denoise_image"]


def __getattr__(name: str) -> Any:
    if name == "denoise_image":
        from .workflows import denoise_image

        return denoise_image
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
