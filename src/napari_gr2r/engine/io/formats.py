"""Image files: which formats are read, how, and with which metadata; TIFF results out.

Read: TIFF and OME-TIFF (memory-mapped or read chunk by chunk), zarr arrays and OME-Zarr
images (read a block at a time), PNG and JPEG (through imageio, the reader napari and
scikit-image use). Other microscope formats (CZI, ND2, LIF, ...) are refused with a message
naming a reader to install, as are folders, damaged files and files whose contents are not
what their name says. Pixel sizes come from napari-gr2r's own TIFF description, OME-XML
(OME-TIFF), ImageJ metadata or OME-Zarr's coordinate transformations, and go into the
outputs: ImageJ's hyperstack metadata and napari-gr2r's JSON description in a TIFF (the
pixel size in the resolution tags where the axes are not in ImageJ's order), OME-XML in an
OME-TIFF (``.ome.tif``), attributes of a zarr result.

Written: TIFF, atomically (a temporary file in the same folder, then a rename). Any other
extension is refused rather than written as a TIFF under a misleading name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, one_line
from .atomic import atomic_path
from .pixelsize import (
    check_tiff,
    clean_scale,
    ome_zarr_scale,
    plain_tiff_layout,
    samples_as_time,
    tiff_metadata,
    tifffile_quiet,
)
from .sources import is_url, open_lazy

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".lsm")
IMAGEIO_SUFFIXES = (".png", ".jpg", ".jpeg")
ZARR_SUFFIXES = (".zarr",)
WRITE_SUFFIXES = (".tif", ".tiff")
READS = ("napari-gr2r reads TIFF/OME-TIFF (.tif, .tiff), zarr/OME-Zarr (.zarr), PNG and JPEG "
         "images")

_CONVERT = "convert it to OME-TIFF (Fiji's Bio-Formats or bioio-conversion) and use that"
OTHER_READERS = {
    ".czi": f"CZI (Zeiss) files are not read by napari-gr2r; {_CONVERT}, or read it in Python "
            "with bioio and bioio-czi (pip install bioio bioio-czi) and pass the array",
    ".nd2": f"ND2 (Nikon) files are not read by napari-gr2r; {_CONVERT}, or read it in Python "
            "with nd2 (pip install nd2) and pass the array",
    ".lif": f"LIF (Leica) files are not read by napari-gr2r; {_CONVERT}, or read it in Python "
            "with readlif or bioio-lif (pip install bioio bioio-lif) and pass the array",
    ".oib": f"OIB (Olympus) files are not read by napari-gr2r; {_CONVERT}, or read it in Python "
            "with oiffile (pip install oiffile) and pass the array",
    ".oir": f"OIR (Olympus) files are not read by napari-gr2r; {_CONVERT}",
    ".vsi": f"VSI (Olympus) files are not read by napari-gr2r; {_CONVERT}",
    ".ims": f"IMS (Imaris) files are not read by napari-gr2r; {_CONVERT}, or read it in Python "
            "with imaris-ims-file-reader and pass the array",
    ".dv": f"DV (DeltaVision) files are not read by napari-gr2r; {_CONVERT}, or read it in "
           "Python with mrc (pip install mrc) and pass the array",
}
"""Formats refused with a message that names a reader (keys: lower-case suffixes)."""

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_OTHER_MAGIC = {b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG", b"PK\x03\x04": "ZIP",
                b"ZISRAWFILE": "CZI", b"\x89HDF": "HDF5"}


# --------------------------------------------------------------------------------------------
# what a path is


def suffix_of(path: str | os.PathLike) -> str:
    """The lower-case extension, with ``.ome`` kept: ``.ome.tif``, ``.ome.zarr``, ``.tif``."""
    name = Path(path).name.lower()
    suffix = Path(name).suffix
    if Path(name[: -len(suffix)] if suffix else name).suffix == ".ome":
        return ".ome" + suffix
    return suffix


def stem_of(path: str | os.PathLike) -> str:
    """The name without its image extension (``cells.ome.tif`` -> ``cells``)."""
    name = Path(path).name
    return name[: len(name) - len(suffix_of(path))] or name


def is_zarr_store(path: Path) -> bool:
    """A folder that holds a zarr array or group (by its name or its metadata files)."""
    if not path.is_dir():
        return False
    if path.suffix.lower() in ZARR_SUFFIXES:
        return True
    return any((path / name).exists() for name in ("zarr.json", ".zarray", ".zgroup"))


def is_image_candidate(path: Path) -> bool:
    """Whether a folder's entry is offered as an input: image files, zarr stores, and the
    microscope formats that are refused with a message (so that they are not passed over
    in silence). Hidden entries (temporary files among them) are not."""
    if path.name.startswith("."):
        return False
    if path.is_dir():
        return is_zarr_store(path)
    suffix = Path(path.name.lower()).suffix
    return suffix in TIFF_SUFFIXES + IMAGEIO_SUFFIXES or suffix in OTHER_READERS


def _magic(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(16)
    except OSError:
        return b""


def _kind_of_bytes(head: bytes) -> str | None:
    if head.startswith(_TIFF_MAGIC):
        return "TIFF"
    return next((name for magic, name in _OTHER_MAGIC.items() if head.startswith(magic)), None)


def special_file_reason(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not read at all (a named pipe, socket or device: opening it could wait
    for ever), or None. Nothing is opened to tell."""
    import stat

    location = os.fspath(path)
    if is_url(location):
        return None
    try:
        mode = os.stat(location).st_mode
    except OSError:
        return None  # missing or unreadable: the reader says so by name
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    what = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device")
    return (f"{Path(location).name} is {what}, not an image file; napari-gr2r reads only "
            "regular files and zarr folders. Copy the image to a file and give that.")


def image_kind(path: str | os.PathLike) -> str:
    """``"tiff"``, ``"zarr"`` or ``"imageio"`` for a readable image; else an
    :class:`InputError` naming the file and saying what is read (or which reader to use)."""
    location = os.fspath(path)
    if is_url(location):
        return "zarr"
    p = Path(location)
    if not p.exists():
        raise InputError(f"No image at {location}.")
    special = special_file_reason(p)
    if special is not None:
        raise InputError(special)
    if p.is_dir():
        if is_zarr_store(p):
            return "zarr"
        raise InputError(f"{p} is a folder, not an image; {READS}. To denoise every image in "
                         "a folder, pass the folder to 'napari-gr2r denoise' with -o a folder.")
    suffix = Path(p.name.lower()).suffix
    if suffix in OTHER_READERS:
        raise InputError(f"{p.name}: {OTHER_READERS[suffix]}.")
    if suffix in ZARR_SUFFIXES:
        what = "an empty file" if p.stat().st_size == 0 else "a file"
        raise InputError(f"{p.name} is {what}, but a zarr store is a folder: this is not (or no "
                         "longer) a zarr store. Give the store's folder, or copy it again.")
    if suffix in TIFF_SUFFIXES:
        return "tiff"
    if suffix in IMAGEIO_SUFFIXES:
        return "imageio"
    found = _kind_of_bytes(_magic(p))
    if found == "TIFF":
        return "tiff"
    if found in ("PNG", "JPEG"):
        return "imageio"
    what = f"extension {suffix}" if suffix else "no extension"
    raise InputError(f"{p.name} is not an image napari-gr2r can read ({what}); {READS}.")


# --------------------------------------------------------------------------------------------
# reading


def read_image(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Open an image lazily, with its axes and pixel size where the file says them.

    Returns
    -------
    data : array-like
        A ``numpy.memmap`` for uncompressed TIFFs, a lazy zarr view of other TIFFs, a zarr
        array for zarr stores (the full-resolution level of an OME-Zarr image), a numpy
        array for PNG and JPEG (an alpha channel is dropped).
    meta : dict
        ``axes`` (letters, or None when the file does not say) and, where the file says,
        ``scale`` (one value per axis) and ``unit`` (of the spatial axes).

    Raises
    ------
    InputError
        One line naming the file: a folder, a damaged file, a file that is not what its
        extension says, a format that is not read (with the reader to use instead).
    """
    kind = image_kind(path)
    if kind == "tiff":
        return _read_tiff(Path(path))
    if kind == "imageio":
        return _read_imageio(Path(path))
    return _read_zarr(os.fspath(path))


def _read_tiff(path: Path) -> tuple[Any, dict[str, Any]]:
    found = _kind_of_bytes(_magic(path))
    if found != "TIFF":
        if found is not None:
            raise InputError(f"{path.name} is a {found} file, not a TIFF; give it its own "
                             f"extension (or convert it); {READS}.")
        raise InputError(f"{path.name} is not a TIFF file (it is empty, damaged or of another "
                         f"format); {READS}.")
    try:
        check_tiff(path)
        with tifffile_quiet():
            data, axes = open_lazy(path)
            meta: dict[str, Any] = {"axes": axes}
            meta.update(tiff_metadata(path, axes))
    except InputError:
        raise
    except Exception as exc:  # tifffile raises several types for damaged files
        raise InputError(f"{path.name} cannot be read as a TIFF ({one_line(exc, kind=False)}); "
                         "it may be damaged or truncated.") from None
    shape = meta.pop("shape", None)
    if shape is not None and tuple(data.shape) != tuple(shape):
        data = _described_shape(path, data, shape)
    return data, clean_scale(meta, len(data.shape))


def _described_shape(path: Path, data: Any, shape: Any) -> Any:
    """napari-gr2r's TIFFs store planes, and their description keeps the array's shape: the
    pages reshaped to it. A description whose shape does not fit the pages (other plane
    sizes, another number of pixels) does not describe this file: refused."""
    try:
        shape = tuple(int(n) for n in shape)
    except (TypeError, ValueError):
        shape = ()
    fits = (len(shape) >= 2 and shape[-2:] == tuple(data.shape[-2:])
            and int(np.prod(shape)) == int(np.prod(data.shape)))
    if not fits:
        raise InputError(
            f"{path.name}'s description gives the shape {list(shape)}, but its pixels are "
            f"{tuple(data.shape)}: the description does not describe this file (damaged, or "
            "edited by another program). Save the image again, e.g. with Fiji or tifffile."
        )
    return np.asarray(data).reshape(shape) if isinstance(data, np.ndarray) else \
        data.reshape(shape)


def _read_imageio(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    try:
        import imageio.v3 as iio
    except ImportError:
        raise InputError(f"Reading {path.name} needs imageio: pip install imageio.") from None
    try:
        data = np.asarray(iio.imread(path))
    except Exception as exc:  # imageio and Pillow raise many types for damaged files
        raise InputError(f"{path.name} cannot be read as a {Path(path).suffix[1:].upper()} "
                         f"image ({one_line(exc, kind=False)}); it may be damaged.") from None
    if data.ndim == 3 and data.shape[-1] == 4:
        data = data[..., :3]  # alpha is not an intensity
    if data.ndim == 2:
        axes = "YX"
    elif data.ndim == 3 and data.shape[-1] in (2, 3):
        axes = "YXC"
    else:
        axes = None
    return data, {"axes": axes}


def _read_zarr(location: str) -> tuple[Any, dict[str, Any]]:
    data, axes = open_lazy(location)
    meta: dict[str, Any] = {"axes": axes}
    try:
        attrs = dict(getattr(data, "attrs", {}))
    except Exception:  # attributes that are not a JSON object (zarr fails in several ways)
        attrs = {}
    if isinstance(attrs.get("axes"), str):
        meta["axes"] = attrs["axes"].upper()
    if isinstance(attrs.get("scale"), list) and len(attrs["scale"]) == len(data.shape):
        meta["scale"] = attrs["scale"]
        for key in ("unit", "time_unit"):
            if isinstance(attrs.get(key), str):
                meta[key] = attrs[key]
        return data, clean_scale(meta, len(data.shape))
    meta.update(ome_zarr_scale(location, len(data.shape)))
    return data, clean_scale(meta, len(data.shape))


# --------------------------------------------------------------------------------------------
# writing


def check_output_suffix(path: str | os.PathLike, zarr_ok: bool = True) -> str:
    """``"tiff"`` or ``"zarr"`` for a result path; an :class:`InputError` for any other
    extension (nothing is written as a TIFF under another format's name)."""
    suffix = Path(os.fspath(path).rstrip("/").lower()).suffix
    if suffix in WRITE_SUFFIXES:
        return "tiff"
    if zarr_ok and suffix in ZARR_SUFFIXES:
        return "zarr"
    allowed = ".tif, .tiff, .ome.tif" + (" or .zarr" if zarr_ok else "")
    what = f"a {suffix} file" if suffix else "a name without an extension"
    raise InputError(f"Cannot write {Path(path).name}: results are float32 images, written as "
                     f"{allowed}, not as {what}. Choose one of those extensions.")


def write_image(path: str | os.PathLike, data: np.ndarray, axes: str,
                meta: dict[str, Any] | None = None) -> Path:
    """Write a TIFF atomically: a temporary file in the same folder, then a rename (see
    :mod:`.atomic`: normal permissions, no stray temporaries).

    A ``.ome.tif`` (``.ome.tiff``) name is written as OME-TIFF, its axes in OME's order
    (``TCZYX``, the sample axis S as T) with the pixel size as OME ``PhysicalSize``; other
    TIFFs keep the axes, shape, scale and unit in a JSON description that :func:`read_image`
    reads back, and are ImageJ hyperstacks where the axes allow
    (:func:`~.pixelsize.plain_tiff_layout`). ``meta["result_of"]``, when given, is recorded in a private tag
    (:func:`read_result_of`).
    """
    path = Path(path)
    check_output_suffix(path, zarr_ok=False)
    import tifffile

    data = np.asarray(data)
    meta = clean_scale(meta or {}, data.ndim)  # bad metadata is dropped, never written
    ome = suffix_of(path).startswith(".ome.")
    if ome:
        data, _, metadata = _ome_layout(data, axes, meta)
        kwargs: dict[str, Any] = {"ome": True, "metadata": metadata}
    else:
        description: dict[str, Any] = {"axes": axes, "shape": list(data.shape)}
        for key in ("scale", "unit", "time_unit"):
            if meta and meta.get(key) is not None:
                description[key] = meta[key]
        kwargs = plain_tiff_layout(axes, data.nbytes, description)
    # minisblack: planes of intensities, never an RGB guess from a side of 3 or 4 (a
    # 3-slice stack or 3 channels would otherwise be stored as one RGB image)
    with atomic_path(path) as tmp:
        result_of = (meta or {}).get("result_of")
        extratags = kwargs.pop("extratags", [])
        if result_of:
            extratags = [*extratags, (RESULT_TAG, "s", 0, json.dumps(result_of), True)]
        tifffile.imwrite(tmp, data, photometric="minisblack", extratags=extratags, **kwargs)
    return path


RESULT_TAG = 65000
"""A private TIFF tag in which a result records what it is the result of (``result_of``:
the model's and the input's fingerprints), read back by :func:`read_result_of`."""


def read_result_of(path: str | os.PathLike) -> dict[str, Any] | None:
    """What a TIFF result records it is the result of, or None (a TIFF written otherwise)."""
    import tifffile

    try:
        with tifffile_quiet(), tifffile.TiffFile(path) as tif:
            tag = tif.pages[0].tags.get(RESULT_TAG)
            record = json.loads(tag.value) if tag is not None else None
    except Exception:  # unreadable or not ours: nothing recorded
        return None
    return record if isinstance(record, dict) else None


def _ome_layout(data: np.ndarray, axes: str, meta: dict[str, Any] | None,
                ) -> tuple[np.ndarray, str, dict[str, Any]]:
    letters = samples_as_time(axes)
    order = [letters.index(a) for a in "TCZYX" if a in letters]
    ome_axes = "".join(letters[i] for i in order)
    metadata: dict[str, Any] = {"axes": ome_axes}
    scale = (meta or {}).get("scale")
    if scale is not None and len(scale) == len(axes):
        unit = (meta or {}).get("unit") or "µm"
        for letter in "ZYX":
            if letter in axes:
                metadata[f"PhysicalSize{letter}"] = float(scale[axes.index(letter)])
                metadata[f"PhysicalSize{letter}Unit"] = unit
        seconds = (meta or {}).get("time_unit")
        if seconds and "T" in axes:  # a real time axis, not samples written as T
            metadata["TimeIncrement"] = float(scale[axes.index("T")])
            metadata["TimeIncrementUnit"] = seconds
    return np.transpose(data, order), ome_axes, metadata
