"""Input images, lazy or not: their checks and block-by-block read access.

Arrays may be numpy arrays (memory-mapped TIFFs included), dask arrays or zarr arrays, and
:func:`open_lazy` opens files and stores as such arrays without reading their pixels. Lazy
arrays are never read whole: statistics come from a sample of blocks.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GR2RError, InputError, one_line
from .axes import parse_axes
from .chunks import random_start
from .hotpixels import HotPixelRule, read_repaired
from .omezarr import multiscales_of

IN_MEMORY_LIMIT = 64 * 2**20  # elements; above this even numpy arrays are sampled
SMALL_CHUNK = 2**14
"""Zarr chunks of fewer elements are read several at a time (whole rows of 256x256), and
for training an image stored in them is read into memory when it fits
(:func:`napari_gr2r.engine.data.collection.whole_if_tiny_chunks`)."""

STATISTICS_WHOLE = 4 * 2**20
"""Values of an image not in memory up to which its statistics read it whole."""

PathLike = str | os.PathLike


def as_lazy_or_numpy(data: Any) -> Any:
    """Numpy and dask arrays pass through; zarr and other array-likes become dask arrays.

    CPU torch tensors become numpy arrays sharing their memory (never written to); nested
    lists become numpy arrays.
    """
    if isinstance(data, np.ndarray):
        return data
    if isinstance(data, np.generic):
        return np.asarray(data)
    module = type(data).__module__.split(".")[0]
    if module == "dask":
        if any(isinstance(n, float) and math.isnan(n) for n in data.shape):
            raise InputError(
                f"The dask array's shape {data.shape} has unknown sizes (NaN), e.g. after "
                "boolean indexing; call array.compute_chunk_sizes() first and pass the result."
            )
        return data
    if module == "torch" and hasattr(data, "detach"):
        return _tensor_as_numpy(data)
    if isinstance(data, (str, bytes, os.PathLike)):
        raise InputError(
            f"Got the path {os.fsdecode(data)!r}, not an image; pass a numpy, dask or zarr array "
            "(read a file with napari_gr2r.io.read_image), or use the command line with a path."
        )
    if hasattr(data, "shape") and hasattr(data, "dtype") and hasattr(data, "__getitem__"):
        import dask.array as da

        chunks = getattr(data, "chunks", "auto")
        if not isinstance(chunks, tuple):
            chunks = "auto"
        elif len(chunks) >= 2 and math.prod(chunks) < SMALL_CHUNK:
            # tiny chunks (1x1, 8x8) would make one task per chunk: read many at a time
            chunks = (*chunks[:-2], *(min(n, max(c, (256 // max(c, 1)) * c))
                                      for c, n in zip(chunks[-2:], data.shape[-2:])))
        try:
            return da.from_array(data, chunks=chunks, asarray=True, fancy=False)
        except TypeError:  # a dtype dask does not know
            raise InputError(
                f"Cannot read an array of type {type(data).__name__} with dtype {data.dtype}; "
                "pass a numpy, dask or zarr array."
            ) from None
    if isinstance(data, (list, tuple)):
        try:
            return np.asarray(data)
        except ValueError:
            raise InputError(
                "The nested lists have rows of different lengths, so they are not an image; "
                "pass a numpy, dask or zarr array."
            ) from None
    raise InputError(
        f"Cannot denoise an object of type {type(data).__name__}; pass a numpy, dask or zarr "
        "array (or a path on the command line)."
    )


def _tensor_as_numpy(tensor: Any) -> np.ndarray:
    import torch

    if tensor.device.type != "cpu":
        raise InputError(
            f"The image is a torch tensor on {tensor.device}; pass tensor.cpu() (or a numpy "
            "array) instead."
        )
    tensor = tensor.detach().resolve_conj().resolve_neg()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.to(torch.float32)
    return tensor.numpy()


F32_MAX = float(np.finfo(np.float32).max)


def lossy_in_float32(dtype: np.dtype) -> bool:
    """Whether casting ``dtype`` to float32 can lose values (32/64-bit ints, float64)."""
    dtype = np.dtype(dtype)
    return (dtype.kind in "iu" and dtype.itemsize >= 4) or (dtype.kind == "f" and
                                                            dtype.itemsize > 4)


def check_float32_range(block: np.ndarray, where: str = "") -> None:
    """Raise :class:`InputError` for values a float32 cannot hold (beyond ~3.4e38)."""
    if block.dtype.kind != "f" or block.dtype.itemsize <= 4 or not block.size:
        return
    peak = max(abs(float(np.min(block))), abs(float(np.max(block))))
    if peak > F32_MAX:
        factor = 10.0 ** math.ceil(math.log10(peak / 1e30))
        raise InputError(
            f"The image has values up to {peak:.3g}{where}, beyond the float32 range (3.4e38) "
            f"the network computes in; divide it by a constant first (e.g. image / {factor:g}) "
            "and multiply the result back."
        )


def check_float32_precision(low: float, high: float) -> None:
    """Raise :class:`InputError` when float32 cannot resolve ``[low, high]`` at its
    magnitude (fewer than 16 steps): e.g. uint64 values near 2**64 that span a few hundred."""
    span = high - low
    if span <= 0:
        return  # constant: the normalisation says so
    magnitude = max(abs(low), abs(high))
    step = float(np.spacing(np.float32(magnitude)))
    if span / step < 16:
        raise InputError(
            f"The image's values lie around {float(magnitude):.6g} but span only "
            f"{float(span):.3g}: float32, in which the network computes, cannot tell them apart "
            "at that magnitude. Subtract the offset first, e.g. image - image.min(), and add "
            "it back to the result if needed."
        )


def check_dtype(dtype: np.dtype) -> None:
    """Integers and floats are accepted; booleans, complex numbers and others are not."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        raise InputError(
            "The image is boolean (a mask?); denoising needs intensities. Use an integer or "
            "float image, or convert a label/mask layer to an image first if that is intended."
        )
    if dtype.kind == "c":
        raise InputError(
            "The image has complex values; denoise the magnitude (np.abs) or the real and "
            "imaginary parts as channels instead."
        )
    if dtype.kind not in "uif":
        raise InputError(f"Unsupported pixel type {dtype}; use an integer or float image.")


def check_finite(block: np.ndarray, where: str = "") -> None:
    if block.dtype.kind == "f" and not np.isfinite(block).all():
        bad = int(block.size - np.count_nonzero(np.isfinite(block)))
        raise InputError(
            f"The image contains {bad} NaN or infinite pixel(s){where}; replace them first, "
            "e.g. with np.nan_to_num(image, nan=np.nanmedian(image))."
        )


def is_in_memory(arr: Any) -> bool:
    return isinstance(arr, np.ndarray) and not isinstance(arr, np.memmap) and \
        arr.size <= IN_MEMORY_LIMIT


def read_or_refuse(arr: Any, index: Any, what: str = "The image") -> np.ndarray:
    """``arr[index]`` in memory; a failed read (a damaged chunk) is one :class:`InputError`."""
    try:
        return np.asarray(arr[index])
    except (GR2RError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # codecs, zarr, dask and file systems raise many types
        raise InputError(f"{what} cannot be read ({one_line(exc, False)}): the file or store is "
                         "damaged (a chunk that doesn't decompress?). Copy it again.") from None


class ImageSource:
    """Read access to an N-D image in the canonical layout (sample, C, Z, Y, X).

    Nothing is read until :meth:`read` is called, and then only the requested block. With a
    :attr:`hot_pixels` rule, :meth:`read` replaces isolated hot and dead pixels
    (:func:`.hotpixels.read_repaired`) and :attr:`hot_pixels_found` collects where they were.
    """

    hot_pixels: HotPixelRule | None = None
    """Replace isolated hot and dead pixels on reading (None: the image as it is)."""

    def __init__(self, data: Any, axes: str) -> None:
        arr = as_lazy_or_numpy(data)
        self.info = parse_axes(axes, arr.shape)
        check_dtype(arr.dtype)
        self.dtype = np.dtype(arr.dtype)
        arr = arr.transpose(self.info.order)
        # insert missing C and Z after the sample axes
        n_lead = len(self.info.sample_axes)
        index: list[Any] = [slice(None)] * n_lead
        index += [slice(None)] if "C" in self.info.axes else [None]
        index += [slice(None)] if "Z" in self.info.axes else [None]
        index += [slice(None), slice(None)]
        self._arr = arr[tuple(index)]
        self.in_memory = is_in_memory(arr)
        chunksize = getattr(self._arr, "chunksize", None)
        self.chunks: tuple[int, int, int] | None = \
            tuple(int(c) for c in chunksize[-3:]) if chunksize is not None else None
        """Chunk size (Z, Y, X) of a lazy array: random blocks are placed inside chunks."""
        if self.in_memory:
            check_finite(self._arr)
            check_float32_range(self._arr)
        self.hot_pixels_found: set[tuple[int, ...]] = set()
        """``(sample, c, z, y, x)`` of each hot or dead pixel :meth:`read` replaced."""

    @property
    def n_samples(self) -> int:
        return self.info.n_samples

    @property
    def czyx(self) -> tuple[int, int, int, int]:
        return self.info.czyx

    def read(self, sample: int, z: slice = slice(None), y: slice = slice(None),
             x: slice = slice(None)) -> np.ndarray:
        """Block ``(C, Z, Y, X)`` of one sample as float32, in the input's intensity units."""
        if self.hot_pixels is not None:
            return read_repaired(self, sample, z, y, x)
        return self._as_float32(self.read_native(sample, z, y, x), f" in sample {sample}")

    def read_native(self, sample: int, z: slice = slice(None), y: slice = slice(None),
                    x: slice = slice(None)) -> np.ndarray:
        """Block ``(C, Z, Y, X)`` of one sample in the input's own dtype."""
        lead = np.unravel_index(sample, self.info.sample_shape) if self.info.sample_shape else ()
        return read_or_refuse(self._arr, (*(int(i) for i in lead), slice(None), z, y, x),
                              f"Part of the image (sample {sample})")

    def _as_float32(self, block: np.ndarray, where: str = "") -> np.ndarray:
        if not self.in_memory:  # checked once for the whole array when it is in memory
            check_finite(block, where)
            check_float32_range(block, where)
        return np.asarray(block, dtype=np.float32)

    def random_blocks(self, rng: np.random.Generator, count: int,
                      size: tuple[int, int, int], native: bool = False) -> list[np.ndarray]:
        """Up to ``count`` random blocks of at most ``size`` (Z, Y, X), for statistics."""
        _, nz, ny, nx = self.czyx
        bz, by, bx = min(size[0], nz), min(size[1], ny), min(size[2], nx)
        chunks = self.chunks or (None, None, None)
        read = self.read_native if native else self.read
        blocks = []
        for _ in range(count):
            s = int(rng.integers(self.n_samples))
            z0, y0, x0 = (random_start(rng, 0, n, b, c)
                          for n, b, c in zip((nz, ny, nx), (bz, by, bx), chunks))
            blocks.append(read(s, slice(z0, z0 + bz), slice(y0, y0 + by), slice(x0, x0 + bx)))
        return blocks

    def statistics_blocks(self, rng: np.random.Generator) -> list[np.ndarray]:
        """The whole image when it is in memory or small (a memory-mapped file or a store of
        up to ``STATISTICS_WHOLE`` values: random blocks of a small image miss its edges and,
        in an image of a few bright spots, the spots), else a sample of blocks (float32).

        For dtypes float32 cannot hold exactly (32/64-bit integers, float64) the blocks'
        range is checked in their own dtype first: see :func:`check_float32_precision`.
        """
        native = lossy_in_float32(self.dtype)
        if self.in_memory or self.n_samples * math.prod(self.czyx) <= STATISTICS_WHOLE:
            blocks = [self.read_native(s) if native else self.read(s)
                      for s in range(self.n_samples)]
        else:
            blocks = self.random_blocks(rng, 24, (16, 256, 256), native=native)
        if not native:
            return blocks
        for c in range(self.czyx[0]):
            values = [b[c] for b in blocks if b[c].size]
            if values:
                cast = int if self.dtype.kind in "iu" else float
                check_float32_precision(min(cast(v.min()) for v in values),
                                        max(cast(v.max()) for v in values))
        return [self._as_float32(b) for b in blocks]


# --------------------------------------------------------------------------------------------
# opening files lazily


def open_lazy(path: PathLike) -> tuple[Any, str | None]:
    """Open an image file or store without reading its pixels.

    Returns ``(array, axes)``; ``axes`` comes from the file's metadata when it has any
    (OME-Zarr, OME-TIFF, ImageJ TIFF), else it is None.

    - a zarr array (format 2 or 3);
    - an OME-Zarr image (a group with ``multiscales`` metadata, 0.4 or 0.5): its
      full-resolution level;
    - a TIFF file: memory-mapped when its pixels are stored contiguously and uncompressed,
      else read chunk by chunk through tifffile's zarr interface.

    ``path`` may also be a URL (``s3://...``, ``https://...``) of a zarr store, read through
    fsspec.
    """
    path = os.fspath(path)
    if not is_url(path):
        local = Path(path)
        if not local.exists():
            raise InputError(f"No image at {local}.")
        if local.is_file() and local.suffix.lower() in (".tif", ".tiff"):
            return _open_tiff(local)
    import zarr

    if not is_url(path) and Path(path).is_file():
        raise InputError(f"{Path(path).name} is a file, but a zarr store is a folder; the file is "
                         "empty or damaged, or not a zarr store. Give the store's folder.")
    try:
        node = zarr.open(store=path, mode="r")
        attrs = {} if isinstance(node, zarr.Array) else dict(node.attrs)
    except Exception as exc:  # zarr raises several unrelated types for "not a store"
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise InputError(
            f"{path} cannot be opened as a zarr store ({detail}); its metadata (.zarray, "
            ".zattrs or zarr.json) is missing or damaged."
        ) from None
    if isinstance(node, zarr.Array):
        return node, None
    multiscales = multiscales_of(attrs)
    if not multiscales:
        arrays = sorted(name for name, _ in node.arrays())
        raise InputError(
            f"{path} is a zarr group without OME-Zarr 'multiscales' metadata; open one of its "
            f"arrays instead ({', '.join(arrays) or 'it has none'})."
        )
    try:
        image = multiscales[0]
        first = image["datasets"][0]["path"]
    except (KeyError, IndexError, TypeError):
        raise InputError(f"{path}'s OME-Zarr metadata lists no image levels (datasets); the "
                         "store is damaged or incomplete.") from None
    try:
        level = node[first]
    except KeyError:
        raise InputError(f"{path} is an OME-Zarr image without its full-resolution level "
                         f"'{first}' (a copy that left it out?); copy the whole store again."
                         ) from None
    if not isinstance(level, zarr.Array):
        raise InputError(f"{path}'s full-resolution level '{first}' is not an array; the "
                         "store is damaged.")
    axes = None
    if "axes" in image:
        names = [a["name"] if isinstance(a, dict) else str(a) for a in image["axes"]]
        letters = "".join(_NGFF_LETTERS.get(n.lower(), "?") for n in names)
        if "?" not in letters:
            axes = letters
    return level, axes


_NGFF_LETTERS = {"t": "T", "c": "C", "s": "S", "z": "Z", "y": "Y", "x": "X"}
"""OME-Zarr axis names as napari-gr2r's axes (``s``: the sample axis of its own results)."""


def is_url(location: str) -> bool:
    """Whether ``location`` is a URL (``s3://...``, ``https://...``) rather than a path."""
    return "://" in location


def _open_tiff(path: Path) -> tuple[Any, str | None]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        # tifffile's S is a pixel's samples (the colours of RGB): channels here, where S is
        # a sample axis (independent images)
        axes = series.axes.upper().replace("Q", "").replace("I", "Z").replace("S", "C") \
            if "C" not in series.axes.upper() else series.axes.upper()
        shape = series.shape
        pyramid = len(series.levels) > 1
    axes = axes if len(axes) == len(shape) and set(axes) <= set("TSCZYX") else None
    if not pyramid:
        try:
            return tifffile.memmap(path, mode="r"), axes
        except ValueError:  # compressed or not contiguous: read tile by tile through zarr
            pass
    import zarr

    # a pyramid's zarr view is a group of levels: its full resolution is level 0
    store = tifffile.imread(path, aszarr=True, level=0)
    return zarr.open(store, mode="r"), axes
