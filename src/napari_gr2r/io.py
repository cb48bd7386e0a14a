"""Images read lazily with their axes and pixel size, results written atomically: the names
scripts have always imported from here.

The one implementation is :mod:`napari_gr2r.engine.io.formats` (TIFF/OME-TIFF, zarr/OME-Zarr,
PNG and JPEG in; TIFF, OME-TIFF or zarr out), which the engine, the command line and the
widget import; ``napari_gr2r.io.read_image`` and ``napari_gr2r.engine.read_image`` are that
same function under the public names that stay.

Nothing here imports napari or Qt.
"""

from __future__ import annotations

from .engine.io.formats import check_output_suffix, read_image, write_image

__all__ = ["check_output_suffix", "read_image", "write_image"]
