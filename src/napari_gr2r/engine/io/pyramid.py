"""Lower-resolution levels of a large OME-Zarr result, so that a viewer need not read it whole.

napari (and other viewers) show a single-resolution image by reading the whole plane in view:
a plane of 20,000 x 20,000 float32 pixels is 1.6 GB, read from the store each time the view
moves to another plane. A multiscale image gives them a level at the resolution of the screen
instead. So a result whose plane has a side above :data:`PYRAMID_MIN` pixels gets levels
``1``, ``2``... beside its full-resolution ``0``, each half the one before in Y and X (each
pixel the mean of 2 x 2, the last row or column repeated where a side is odd), until the
larger side is at most :data:`PYRAMID_TOP`. They are written from level ``0`` once every
block of it is done, a piece of whole chunks at a time (bounded memory, stoppable between
pieces),
and listed in the image's metadata last: a store stopped while they are written lists level
``0`` only, and the next run into it writes them again. Only OME-Zarr results have levels
(in their axes, ``Y`` and ``X`` come last).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .omezarr import AXIS_NAMES, image_group, levels_listed, ome_metadata

PYRAMID_MIN = 4096
"""A result gets lower-resolution levels when its plane has a side longer than this."""
PYRAMID_TOP = 1024
"""The last level's larger side is at most this."""
MAX_BAND = 512
"""Rows of a new level written at a time (twice as many read from the level before)."""
READ_BYTES = 64 * 2**20
"""About how much of the level before is read at a time (at least one chunk of the new level's
width)."""


def levels_for(shape: tuple[int, ...]) -> int:
    """How many levels beyond the full resolution a plane of ``shape[-2:]`` gets."""
    side = max(shape[-2:])
    if side <= PYRAMID_MIN:
        return 0
    return math.ceil(math.log2(side / PYRAMID_TOP))


def pending_levels(arr: Any) -> int:
    """How many levels :func:`write_levels` has to write for ``arr`` (0 when none are due or
    they are listed already)."""
    group = image_group(arr)
    count = levels_for(tuple(arr.shape)) if group is not None else 0
    return 0 if count == 0 or levels_listed(group) == count + 1 else count


def write_levels(arr: Any, axes: str,
                 should_stop: Callable[[], bool] | None = None) -> int:
    """Write and list the lower-resolution levels of the OME-Zarr result whose level ``0`` is
    ``arr`` (nothing for a plain array or a small plane); returns how many it has.

    Levels already listed are kept (a finished store run again). ``should_stop`` is polled
    between the pieces it writes: an :class:`InterruptedError` leaves level ``0`` as it was.
    """
    group = image_group(arr)
    count = levels_for(tuple(arr.shape))
    if group is None or count == 0:
        return 0
    if levels_listed(group) == count + 1:
        return count
    source = arr
    for level in range(1, count + 1):
        source = _halve_into(group, str(level), source, axes, should_stop)
    name = group.attrs["ome"]["multiscales"][0].get("name", "denoised")
    meta = {key: arr.attrs[key] for key in ("scale", "unit", "time_unit") if key in arr.attrs}
    group.attrs["ome"] = ome_metadata(axes, meta, name, levels=count + 1)  # listed last
    return count


def _halve_into(group: Any, path: str, source: Any, axes: str,
                should_stop: Callable[[], bool] | None) -> Any:
    """A new level ``path`` of ``group``: ``source`` halved in Y and X, written a piece at a
    time: the leading axes of one of ``source``'s chunks, one chunk of rows of the new level,
    and as many whole chunks of its columns as :data:`READ_BYTES` allows."""
    height, width = source.shape[-2:]
    lead, lead_chunks = tuple(source.shape[:-2]), tuple(source.chunks[:-2])
    shape = (*lead, -(-height // 2), -(-width // 2))
    band = min(int(source.chunks[-2]), MAX_BAND)  # rows per band: one chunk of the new level
    chunks = (*(1 for _ in lead), min(band, shape[-2]), min(int(source.chunks[-1]), shape[-1]))
    target = group.create_array(path, shape=shape, chunks=chunks, dtype="float32",
                                fill_value=0.0, dimension_names=[AXIS_NAMES[a] for a in axes],
                                overwrite=True)
    # columns per piece: whole chunks of the new level, about READ_BYTES read at a time
    per_column = 4 * (2 * band) * 2 * math.prod(lead_chunks)
    cols = max(chunks[-1], READ_BYTES // per_column // chunks[-1] * chunks[-1])
    grid = [range(0, n, c) for n, c in zip(lead, lead_chunks)]
    for starts in itertools.product(*grid):
        index = tuple(slice(a, a + c) for a, c in zip(starts, lead_chunks))
        for row, col in itertools.product(range(0, shape[-2], band), range(0, shape[-1], cols)):
            if should_stop is not None and should_stop():
                raise InterruptedError("Denoising was stopped while its lower-resolution levels "
                                       "were written; run it again to write them.")
            piece = np.asarray(source[(*index, slice(2 * row, 2 * (row + band)),
                                       slice(2 * col, 2 * (col + cols)))], np.float32)
            half = halve(piece)
            target[(*index, slice(row, row + half.shape[-2]),
                    slice(col, col + half.shape[-1]))] = half
    return target


def halve(data: np.ndarray) -> np.ndarray:
    """``data`` at half the resolution in its last two axes: the mean of each 2 x 2 pixels,
    the last row or column repeated where a side is odd."""
    rows, cols = data.shape[-2:]
    pad = [(0, 0)] * (data.ndim - 2) + [(0, rows % 2), (0, cols % 2)]
    data = np.pad(data, pad, mode="edge")
    shape = (*data.shape[:-2], data.shape[-2] // 2, 2, data.shape[-1] // 2, 2)
    return data.reshape(shape).mean(axis=(-3, -1), dtype=np.float32)


def result_levels(arr: Any) -> list[Any]:
    """Every listed level of the OME-Zarr result whose level ``0`` is ``arr``, full resolution
    first (``[arr]`` for a plain array or a result of one level)."""
    group = image_group(arr)
    count = levels_listed(group) if group is not None else 0
    return [arr] + [group[str(level)] for level in range(1, count)]
