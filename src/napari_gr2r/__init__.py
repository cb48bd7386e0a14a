"""napari-gr2r: self-supervised GR2R denoising for microscopy, in napari and headless.

Importing this package loads neither napari nor Qt nor torch; use :mod:`napari_gr2r.engine`
for the Python API.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
