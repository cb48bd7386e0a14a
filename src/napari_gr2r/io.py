"""Reading and writing images for the command line: TIFF (memory-mapped when possible) and zarr.

Nothing here imports napari or Qt.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .engine.errors import InputError

# tifffile's axis codes that map onto ours; others need an explicit --axes
_TIFF_AXES = {"T": "T", "Z": "Z", "Y": "Y", "X": "X", "C": "C", "S": "C", "I": "T", "Q": "T"}


def is_zarr_path(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.suffix == ".zarr" or (p.is_dir() and any(
        (p / name).exists() for name in (".zarray", ".zgroup", "zarr.json")))


def read_image(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Open an image lazily where the format allows it.

    Returns
    -------
    data : array-like
        A ``numpy.memmap`` for uncompressed TIFFs, a numpy array for other TIFFs, a zarr array
        for zarr stores (the full-resolution level ``0`` of an OME-Zarr group).
    meta : dict
        ``axes`` (our letters, or None when unknown) and, where the file says, ``scale``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"No such file or folder: {path}")
    if is_zarr_path(path):
        return _read_zarr(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        raise InputError(f"Cannot read {path.name}: use a TIFF (.tif) file or a zarr store (.zarr).")
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            meta = _tiff_meta(tif, series)
        try:
            data = tifffile.memmap(path, mode="r")
        except (ValueError, OSError):
            data = tifffile.imread(path)
    except tifffile.TiffFileError as exc:
        raise InputError(f"{path.name} is not a readable TIFF file: {exc}") from None
    return data, meta


def _tiff_meta(tif: Any, series: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"axes": None}
    axes = getattr(series, "axes", "") or ""
    if axes and all(a in _TIFF_AXES for a in axes):
        ours = "".join(_TIFF_AXES[a] for a in axes)
        if len(set(ours)) == len(ours):
            meta["axes"] = ours
    description = tif.pages[0].description or ""
    if description.startswith("{"):
        try:
            info = json.loads(description)
        except ValueError:
            info = {}
        if isinstance(info.get("axes"), str):
            meta["axes"] = info["axes"].upper()
        for key in ("scale", "unit"):
            if key in info:
                meta[key] = info[key]
    return meta


def _read_zarr(path: Path) -> tuple[Any, dict[str, Any]]:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises several unrelated types for unreadable stores
        raise InputError(f"{path} is not a readable zarr store: {exc}") from None
    meta: dict[str, Any] = {"axes": None}
    if isinstance(node, zarr.Array):
        axes = node.attrs.get("axes")
        if isinstance(axes, str):
            meta["axes"] = axes.upper()
        return node, meta
    # a group: OME-Zarr multiscales, or the first array
    multiscales = node.attrs.get("multiscales") or node.attrs.get("ome", {}).get("multiscales")
    if multiscales:
        first = multiscales[0]
        level = first["datasets"][0]["path"]
        names = [a["name"] if isinstance(a, dict) else a for a in first.get("axes", [])]
        if names:
            ours = "".join({"t": "T", "c": "C", "z": "Z", "y": "Y", "x": "X"}.get(n.lower(), "?")
                           for n in names)
            meta["axes"] = ours if "?" not in ours else None
        return node[level], meta
    arrays = [name for name, _ in node.arrays()]
    if not arrays:
        raise InputError(f"The zarr group {path} holds no arrays.")
    return node[arrays[0]], meta


def write_image(path: str | os.PathLike, data: np.ndarray, axes: str,
                meta: dict[str, Any] | None = None) -> Path:
    """Write a TIFF atomically (temporary file, then rename), or a zarr store."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".zarr":
        import zarr

        chunks = tuple(min(s, 256) if a in "YX" else 1 for s, a in zip(data.shape, axes))
        z = zarr.open(str(path), mode="w", shape=data.shape, dtype=data.dtype, chunks=chunks)
        z[...] = data
        z.attrs["axes"] = axes
        return path
    import tifffile

    description = {"axes": axes}
    for key in ("scale", "unit"):
        if meta and key in meta:
            description[key] = meta[key]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        tifffile.imwrite(tmp, data, description=json.dumps(description), metadata=None)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
