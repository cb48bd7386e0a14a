"""Images for the command line: read lazily with their axes and pixel size, results written
atomically. The formats themselves live in :mod:`napari_gr2r.engine.io.formats` (TIFF/OME-TIFF,
zarr/OME-Zarr, PNG and JPEG in; TIFF, OME-TIFF or zarr out); this module keeps their names
where the command line and scripts have always found them.

Nothing here imports napari or Qt.
"""

from __future__ import annotations

from .engine.io.formats import check_output_suffix, read_image, write_image

__all__ = ["check_output_suffix", "read_image", "write_image"]
