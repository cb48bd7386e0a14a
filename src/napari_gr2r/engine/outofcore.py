"""Out-of-core denoising: a lazy image in, a zarr store out, chunk by chunk, resumable.

The output is cut into blocks aligned with its zarr chunks. Each block is denoised on its own:
the input block is read with a halo of the network's receptive radius (rounded up to the
network's down-sampling factor), denoised with the tile plan of
:mod:`.tiling`, cropped back to the block and written. Block origins are multiples of the
down-sampling factor and the halo covers the receptive field, so the result equals the
in-memory result to float precision, while memory holds one block (plus its halo) at a time.

A block is marked done in the output array's attributes only after its chunks are written; a
second call with the same model and output skips the blocks already done, so an interrupted
run resumes where it stopped. With a ``dask.distributed`` client the blocks run as tasks on
the cluster's workers: the model is sent once to every worker, each task reads its block from
the input, writes its chunks to the shared output store and returns, and the client records
the finished blocks.

>>> arr = denoise_to_zarr(model, "big.ome.zarr", "ZYX", "big-denoised.zarr")  # doctest: +SKIP
>>> layer_data = dask.array.from_zarr(arr)                                     # doctest: +SKIP
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .axes import AxesInfo
from .errors import InputError
from .tiling import TilePlan, default_tiling
from .model import GR2RModel
from .networks import place
from .sources import ImageSource

STATE_KEY = "napari_gr2r"
STATE_VERSION = 1
MAX_Z_BLOCK_2D = 16

PathLike = str | os.PathLike


# --------------------------------------------------------------------------------------------
# opening inputs lazily


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
    if not _is_url(path):
        local = Path(path)
        if not local.exists():
            raise InputError(f"No image at {local}.")
        if local.is_file() and local.suffix.lower() in (".tif", ".tiff"):
            return _open_tiff(local)
    import zarr

    try:
        node = zarr.open(store=path, mode="r")
    except Exception as exc:  # zarr raises several unrelated types for "not a store"
        raise InputError(
            f"{path} is neither a TIFF file nor a zarr store ({type(exc).__name__}: {exc})."
        ) from None
    if isinstance(node, zarr.Array):
        return node, None
    attrs = dict(node.attrs)
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if not multiscales:
        arrays = sorted(name for name, _ in node.arrays())
        raise InputError(
            f"{path} is a zarr group without OME-Zarr 'multiscales' metadata; open one of its "
            f"arrays instead ({', '.join(arrays) or 'it has none'})."
        )
    image = multiscales[0]
    level = node[image["datasets"][0]["path"]]
    axes = None
    if "axes" in image:
        names = [a["name"] if isinstance(a, dict) else str(a) for a in image["axes"]]
        letters = "".join({"t": "T", "c": "C", "z": "Z", "y": "Y", "x": "X"}.get(n.lower(), "?")
                          for n in names)
        if "?" not in letters:
            axes = letters
    return level, axes


def _is_url(location: str) -> bool:
    return "://" in location


def _same_location(a: str, b: str) -> bool:
    if _is_url(a) or _is_url(b):
        return a.rstrip("/") == b.rstrip("/")
    return Path(a).resolve() == Path(b).resolve()


def _existing_array(location: str) -> Any | None:
    """The zarr array at ``location``; None when nothing is there; raises for other things."""
    import zarr

    if not _is_url(location) and not Path(location).exists():
        return None
    try:
        return zarr.open_array(store=location, mode="r+")
    except Exception:  # zarr raises several unrelated types for "not an array"
        if _is_url(location):
            return None
        raise InputError(
            f"{location} exists and is not a zarr array; napari-gr2r writes its result only to "
            "a new path or over a zarr array. Choose another output path."
        ) from None


def _open_tiff(path: Path) -> tuple[Any, str | None]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes = series.axes.upper().replace("Q", "").replace("I", "Z")
        shape = series.shape
    axes = axes if len(axes) == len(shape) and set(axes) <= set("TSCZYX") else None
    try:
        return tifffile.memmap(path, mode="r"), axes
    except ValueError:  # compressed or not contiguous: read tile by tile through zarr
        import zarr

        store = tifffile.imread(path, aszarr=True)
        return zarr.open(store, mode="r"), axes


# --------------------------------------------------------------------------------------------
# the block grid


@dataclass(frozen=True)
class Block:
    """One block of the output: a sample and a (Z, Y, X) box, in canonical coordinates."""

    index: int
    sample: int
    box: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class BlockGrid:
    """Blocks covering ``(samples, Z, Y, X)``, with the halo each one is read with."""

    info: AxesInfo
    block: tuple[int, int, int]
    halo: tuple[int, int, int]

    @property
    def counts(self) -> tuple[int, int, int, int]:
        _, nz, ny, nx = self.info.czyx
        return (self.info.n_samples, *(math.ceil(n / b) for n, b in zip((nz, ny, nx), self.block)))

    def __len__(self) -> int:
        return math.prod(self.counts)

    def __getitem__(self, index: int) -> Block:
        s, iz, iy, ix = np.unravel_index(index, self.counts)
        sizes = self.info.czyx[1:]
        box = tuple((int(i) * b, min((int(i) + 1) * b, n))
                    for i, b, n in zip((iz, iy, ix), self.block, sizes))
        return Block(index, int(s), box)  # type: ignore[arg-type]

    def read_box(self, block: Block) -> tuple[tuple[int, int], ...]:
        sizes = self.info.czyx[1:]
        return tuple((max(0, a - h), min(n, b + h))
                     for (a, b), h, n in zip(block.box, self.halo, sizes))

    def out_index(self, block: Block) -> tuple[Any, ...]:
        """Where the block goes in the output array (which has the input's axes)."""
        info = self.info
        lead = np.unravel_index(block.sample, info.sample_shape) if info.sample_shape else ()
        lead_iter = iter(int(i) for i in lead)
        spatial = dict(zip("ZYX", (slice(a, b) for a, b in block.box)))
        index = []
        for letter in info.axes:
            if letter in "TS":
                index.append(next(lead_iter))
            elif letter == "C":
                index.append(slice(None))
            else:
                index.append(spatial[letter])
        return tuple(index)

    def to_output_layout(self, data: np.ndarray) -> np.ndarray:
        """``(C, Z, Y, X)`` block data in the order of the input's non-sample axes."""
        axes = self.info.axes
        present = [a for a in "CZYX" if a in axes]
        squeeze = tuple(i for i, a in enumerate("CZ") if a not in axes)
        data = data.squeeze(axis=squeeze) if squeeze else data
        wanted = [a for a in axes if a in "CZYX"]
        return np.transpose(data, [present.index(a) for a in wanted])


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _lcm(a: int, b: int) -> int:
    return a * b // math.gcd(a, b)


def _input_z_chunk(data: Any, info: AxesInfo) -> int | None:
    chunks = getattr(data, "chunksize", None) or getattr(data, "chunks", None)
    if "Z" not in info.axes or not isinstance(chunks, tuple) or len(chunks) != len(info.shape):
        return None
    value = chunks[info.axes.index("Z")]
    return int(value) if isinstance(value, (int, np.integer)) else None


def plan_blocks(model: GR2RModel, info: AxesInfo, tile: Any = None, chunks: Any = None,
                out_chunks: tuple[int, ...] | None = None, input_z_chunk: int | None = None,
                ) -> BlockGrid:
    """The block grid for an image: block sizes, and the halo read around each block.

    ``chunks`` (int, or per axis of the network: YX or ZYX) sets the block size; an existing
    output's ``out_chunks`` (in the input's axes) is followed instead, rounded up to whole
    multiples of the network's down-sampling factor. By default a block plus its halo makes
    one inference tile.
    """
    net = model.net
    multiple = int(getattr(net, "multiple", 1))
    radius = int(getattr(net, "receptive_radius", 32))
    halo_px = _round_up(radius, multiple)
    _, nz, ny, nx = info.czyx
    tiles, _ = default_tiling(model, tile, None)
    if model.dims == 2:
        halo = (0, halo_px, halo_px)
        tiles = (1, *tiles)
    else:
        halo = (halo_px,) * 3
    if out_chunks is not None:
        for letter, size in zip(info.axes, out_chunks):
            if letter in "TS" and size != 1:
                raise InputError(
                    f"The output array has chunks of {size} along the sample axis {letter}; "
                    "blocks are written one sample at a time, so that axis needs chunks of 1."
                )
            if letter == "C" and size != info.n_channels:
                raise InputError(
                    f"The output array splits the {info.n_channels} channels into chunks of "
                    f"{size}; all channels of a pixel are written together, so use one chunk "
                    "along C."
                )
        by_letter = {a: int(c) for a, c in zip(info.axes, out_chunks)}
        block = [by_letter.get("Z", 1), by_letter["Y"], by_letter["X"]]
        spatial = range(1, 3) if model.dims == 2 else range(3)
        for i in spatial:
            block[i] = _lcm(block[i], multiple)
    elif chunks is not None:
        values = (chunks,) * model.dims if isinstance(chunks, int) else tuple(chunks)
        if len(values) != model.dims or any(int(v) < 1 for v in values):
            raise ValueError(f"chunks needs {model.dims} positive values for a {model.dims}D model")
        values = tuple(_round_up(int(v), multiple) for v in values)
        block = [1, *values] if model.dims == 2 else list(values)
    else:
        block = [max(_round_up(max(t - 2 * h, t // 2), multiple), multiple)
                 for t, h in zip(tiles, halo)]
        if model.dims == 2:
            block[0] = min(max(1, input_z_chunk or 1), MAX_Z_BLOCK_2D)
    block = [min(b, _round_up(n, multiple) if i or model.dims == 3 else n)
             for i, (b, n) in enumerate(zip(block, (nz, ny, nx)))]
    return BlockGrid(info, tuple(int(b) for b in block), halo)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# one block


def denoise_block(model: GR2RModel, source: ImageSource, grid: BlockGrid, block: Block, *,
                  tile: Any = None, overlap: Any = None, batch_size: int = 4,
                  device: str = "cpu", should_stop: Callable[[], bool] | None = None,
                  ) -> np.ndarray:
    """Denoise one block: read it with its halo, tile it through the net, crop the halo.

    Returns the block's ``(C, Z, Y, X)`` float32 result in the input's intensity scale.
    """
    read = grid.read_box(block)
    data = source.read(block.sample, *(slice(a, b) for a, b in read))
    sub = ImageSource(data, "CZYX")
    plan = TilePlan(model, sub, tile, overlap)
    result = np.empty(data.shape, np.float32)
    for _, z, denoised in plan.run(batch_size, device, None, should_stop):
        result[:, z] = denoised
    crop = tuple(slice(a - r0, b - r0) for (a, b), (r0, _) in zip(block.box, read))
    return result[(slice(None), *crop)]


def _fits_one_tile(model: GR2RModel, grid: BlockGrid, tile: Any) -> bool:
    """Whether a full block plus its halo goes through the network whole (and batched).

    True when it fits in a tile, or, with the default tile, when it holds at most twice a
    tile's pixels (deep networks have halos wider than a tile's margin).
    """
    tiles, _ = default_tiling(model, tile, None)
    sizes = [b + 2 * h for b, h in zip(grid.block, grid.halo)][-model.dims:]
    if all(s <= t for s, t in zip(sizes, tiles)):
        return True
    return tile is None and math.prod(sizes) <= 2 * math.prod(tiles)


def denoise_blocks(model: GR2RModel, source: ImageSource, grid: BlockGrid, indices: list[int],
                   *, tile: Any = None, overlap: Any = None, batch_size: int = 4,
                   device: str = "cpu", should_stop: Callable[[], bool] | None = None,
                   ) -> Iterator[tuple[Block, np.ndarray]]:
    """Denoise blocks in order, yielding ``(block, (C, Z, Y, X) result)`` for each.

    When a block and its halo fit in one tile, blocks of equal shape go through the network
    together, ``batch_size`` images (2D planes or 3D blocks) at a time: a forward pass over a
    batch costs far less per image than one image at a time. Larger blocks are tiled.
    """
    import torch

    if not _fits_one_tile(model, grid, tile):
        for index in indices:
            block = grid[index]
            yield block, denoise_block(model, source, grid, block, tile=tile, overlap=overlap,
                                       batch_size=batch_size, device=device,
                                       should_stop=should_stop)
        return
    net = place(model.net, device).eval()
    norm = model.normalization
    pending: list[tuple[Block, np.ndarray]] = []

    def as_images(data: np.ndarray) -> np.ndarray:
        # (C, Z, Y, X) -> batch items: Z planes of (C, Y, X) for 2D, one (C, Z, Y, X) for 3D
        return np.moveaxis(data, 1, 0) if model.dims == 2 else data[None]

    def flush() -> Iterator[tuple[Block, np.ndarray]]:
        if should_stop is not None and should_stop():
            raise InterruptedError("Denoising was stopped; run it again to resume.")
        images = np.concatenate([as_images(d) for _, d in pending])
        with torch.inference_mode():
            pred = net(torch.from_numpy(images).to(device)).float().cpu().numpy()
        start = 0
        for block, data in pending:
            n = data.shape[1] if model.dims == 2 else 1
            result = pred[start:start + n]
            start += n
            result = np.moveaxis(result, 0, 1) if model.dims == 2 else result[0]
            read = grid.read_box(block)
            crop = tuple(slice(a - r0, b - r0) for (a, b), (r0, _) in zip(block.box, read))
            yield block, norm.invert(np.ascontiguousarray(result[(slice(None), *crop)]))
        pending.clear()

    for index in indices:
        block = grid[index]
        read = grid.read_box(block)
        data = norm.apply(source.read(block.sample, *(slice(a, b) for a, b in read)))
        if pending and pending[0][1].shape[1 if model.dims == 2 else 0:] != \
                data.shape[1 if model.dims == 2 else 0:]:
            yield from flush()
        pending.append((block, data))
        images = sum(d.shape[1] if model.dims == 2 else 1 for _, d in pending)
        if images >= batch_size:
            yield from flush()
    if pending:
        yield from flush()


# --------------------------------------------------------------------------------------------
# resumable state in the output's attributes


def model_fingerprint(model: GR2RModel) -> str:
    """A digest of the weights, normalisation and network shape: which model wrote a store."""
    digest = hashlib.sha256()
    digest.update(repr((model.dims, model.channels, model.config.width, model.config.depth,
                        model.normalization.low, model.normalization.high)).encode())
    for name, tensor in sorted(model.net.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def _pack(done: np.ndarray) -> str:
    return base64.b64encode(np.packbits(done).tobytes()).decode("ascii")


def _unpack(text: str, n: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(base64.b64decode(text), np.uint8))
    return bits[:n].astype(bool)


@dataclass
class _State:
    """What the output's attributes record about a (possibly interrupted) run."""

    settings: dict[str, Any]
    done: np.ndarray

    def to_attrs(self) -> dict[str, Any]:
        return {**self.settings, "version": STATE_VERSION, "done": _pack(self.done),
                "blocks_done": int(self.done.sum()), "complete": bool(self.done.all())}


def read_state(out: Any) -> dict[str, Any] | None:
    """The denoising record of an output array, or None when it has none."""
    state = dict(out.attrs).get(STATE_KEY)
    return dict(state) if isinstance(state, dict) else None


def _write_state(out: Any, state: _State) -> None:
    out.attrs[STATE_KEY] = state.to_attrs()


# --------------------------------------------------------------------------------------------
# the output store


def _open_output(out: Any, shape: tuple[int, ...], chunks: tuple[int, ...], overwrite: bool,
                 source_path: str | None) -> tuple[Any, bool]:
    """The output zarr array and whether its chunking is given (an existing array)."""
    import zarr

    if isinstance(out, (str, os.PathLike)):
        location = os.fspath(out)
        if source_path is not None and _same_location(location, source_path):
            raise InputError(f"The output {location} is the input; choose another output path.")
        arr = _existing_array(location)  # raises for anything but a zarr array
        if arr is not None and not overwrite:
            if read_state(arr) is None:
                raise InputError(
                    f"{location} is an existing zarr array that napari-gr2r did not write; "
                    "choose another output path (or pass overwrite=True to replace it)."
                )
            return arr, True
        arr = zarr.create_array(store=location, shape=shape, chunks=chunks, dtype="float32",
                                fill_value=0.0, overwrite=True)
        return arr, False
    if not hasattr(out, "attrs") or not hasattr(out, "chunks") or not hasattr(out, "__setitem__"):
        raise InputError(
            f"out= must be a path or a writable zarr array, not {type(out).__name__}."
        )
    if tuple(out.shape) != tuple(shape):
        raise InputError(
            f"The output array has shape {tuple(out.shape)} but the image has shape {shape}; "
            "they must match."
        )
    if np.dtype(out.dtype).kind != "f":
        raise InputError(
            f"The output array has dtype {out.dtype}; denoised images are floating point, so "
            "create it with dtype float32."
        )
    return out, True


def _default_out_chunks(grid: BlockGrid) -> tuple[int, ...]:
    info = grid.info
    sizes = dict(zip("ZYX", grid.block))
    return tuple(1 if a in "TS" else info.n_channels if a == "C" else sizes[a]
                 for a in info.axes)


# --------------------------------------------------------------------------------------------
# the public functions


@dataclass(frozen=True)
class ChunkProgress:
    """Progress of an out-of-core run: ``done`` of ``total`` blocks, ``written`` in this call."""

    done: int
    total: int
    written: int
    skipped: int


def iter_denoise_to_zarr(model: GR2RModel, data: Any, axes: str | None, out: Any, *,
                         tile: Any = None, overlap: Any = None, chunks: Any = None,
                         batch_size: int = 4, device: str = "auto", client: Any = None,
                         should_stop: Callable[[], bool] | None = None,
                         overwrite: bool = False) -> Iterator[ChunkProgress]:
    """Generator form of :func:`denoise_to_zarr`: yields :class:`ChunkProgress` per block.

    The generator's return value (``StopIteration.value``, or napari's worker ``returned``
    signal) is the output zarr array. Stopping the iteration, or ``should_stop`` returning
    True, leaves every finished block recorded, so a later call resumes.
    """
    from .devices import resolve_device, usable_device

    source_path = None
    if isinstance(data, (str, os.PathLike)):
        source_path = os.fspath(data)
        data, file_axes = open_lazy(source_path)
        axes = axes or file_axes
    source = model.open_source(data, axes)
    info = source.info
    default_tiling(model, tile, overlap)  # checks tile and overlap early

    existing = None
    if out is data or (hasattr(out, "store") and hasattr(data, "store") and
                       out.store == data.store and getattr(out, "path", None) ==
                       getattr(data, "path", None)):
        raise InputError("The output array is the input; denoise into another array.")
    if not isinstance(out, (str, os.PathLike)):
        existing = tuple(int(c) for c in out.chunks) if hasattr(out, "chunks") else None
    elif not overwrite:
        found = _existing_array(os.fspath(out))
        existing = tuple(int(c) for c in found.chunks) if found is not None else None
    grid = plan_blocks(model, info, tile, chunks, existing, _input_z_chunk(data, info))
    arr, _ = _open_output(out, info.shape, _default_out_chunks(grid), overwrite, source_path)
    if existing is None:
        grid = plan_blocks(model, info, tile, chunks, tuple(arr.chunks),
                           _input_z_chunk(data, info))

    settings = {"model": model_fingerprint(model), "axes": info.axes, "shape": list(info.shape),
                "block": list(grid.block), "halo": list(grid.halo)}
    total = len(grid)
    previous = read_state(arr)
    done = np.zeros(total, bool)
    if previous is not None and not overwrite:
        mismatch = [k for k in ("axes", "shape", "block", "halo") if previous.get(k) != settings[k]]
        if previous.get("model") != settings["model"]:
            raise InputError(
                "The output store holds a (partial) result of another model; choose another "
                "output, or pass overwrite=True to denoise it again with this model."
            )
        if mismatch or previous.get("version") != STATE_VERSION:
            raise InputError(
                f"The output store was written with other settings ({', '.join(mismatch)}); "
                "choose another output, or pass overwrite=True to start again."
            )
        done = _unpack(previous["done"], total)
    state = _State(settings, done)
    _write_state(arr, state)

    skipped = int(done.sum())
    todo = [i for i in range(total) if not done[i]]
    yield ChunkProgress(skipped, total, 0, skipped)
    if client is None:
        dev = usable_device(model.net, resolve_device(device), model.dims, model.channels)
        if should_stop is not None and should_stop():
            raise InterruptedError("Denoising was stopped; run it again to resume.")
        results = denoise_blocks(model, source, grid, todo, tile=tile, overlap=overlap,
                                 batch_size=batch_size, device=dev.type, should_stop=should_stop)
        for n, (block, result) in enumerate(results, 1):
            arr[grid.out_index(block)] = grid.to_output_layout(result)
            done[block.index] = True
            _write_state(arr, state)
            yield ChunkProgress(int(done.sum()), total, n, skipped)
    else:
        yield from _run_on_cluster(client, model, data, source_path, axes, arr, grid, state,
                                   todo, tile=tile, overlap=overlap, batch_size=batch_size,
                                   should_stop=should_stop)
    return arr


def denoise_to_zarr(model: GR2RModel, data: Any, axes: str | None, out: Any, *,
                    tile: Any = None, overlap: Any = None, chunks: Any = None,
                    batch_size: int = 4, device: str = "auto", client: Any = None,
                    progress: Callable[[int, int], Any] | None = None,
                    should_stop: Callable[[], bool] | None = None,
                    overwrite: bool = False) -> Any:
    """Denoise an image of any size into a zarr array, block by block; resumable.

    Parameters
    ----------
    model : GR2RModel
    data : array or path
        A zarr, dask or numpy array (memory-mapped TIFFs included), or a path to a zarr
        array, an OME-Zarr image (its full-resolution level is used) or a TIFF file. Read one
        block at a time, never modified.
    axes : str or None
        The image's axes; None takes them from the file's metadata or the model.
    out : path or zarr array
        Where the float32 result goes, with the input's shape and axes. A new path is created
        with chunks aligned with the blocks; an existing output of an interrupted run with the
        same model and settings is resumed (blocks already written are skipped); an existing
        zarr array given as an object is written into, and its chunks set the blocks.
    tile, overlap : int or tuple, optional
        Tiling inside a block, as for :func:`~napari_gr2r.engine.denoise`.
    chunks : int or tuple, optional
        Block (and chunk) size per network axis (YX or ZYX) for a new output; by default a
        block plus its halo is about one tile.
    batch_size : int
        Tiles per forward pass.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"`` (in-process runs; cluster workers use
        their own default device).
    client : distributed.Client, optional
        Run the blocks as tasks on this dask cluster. The input and output must be
        reachable from the workers (files on a shared file system or object storage).
    progress : callable, optional
        Called as ``progress(done, total)`` in blocks, once at the start (counting blocks
        already written by an earlier run) and after each block.
    should_stop : callable, optional
        Polled between blocks and tile batches; when it returns True an
        :class:`InterruptedError` is raised and the blocks written so far are kept.
    overwrite : bool
        Start again even if ``out`` holds another result.

    Returns
    -------
    zarr.Array
        The output array; ``dask.array.from_zarr(result)`` gives a lazy view for napari.
    """
    gen = iter_denoise_to_zarr(model, data, axes, out, tile=tile, overlap=overlap, chunks=chunks,
                               batch_size=batch_size, device=device, client=client,
                               should_stop=should_stop, overwrite=overwrite)
    while True:
        try:
            step = next(gen)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(step.done, step.total)


def denoise_lazy(model: GR2RModel, data: Any, axes: str | None, out: Any, **kwargs: Any) -> Any:
    """Denoise into ``out`` (see :func:`denoise_to_zarr`) and return a dask array over it.

    The dask array reads the result chunk by chunk: napari shows it as a lazily loaded layer.
    """
    import dask.array as da

    return da.from_zarr(denoise_to_zarr(model, data, axes, out, **kwargs))


# --------------------------------------------------------------------------------------------
# dask.distributed


def _model_payload(model: GR2RModel) -> dict[str, Any]:
    from .checkpoint import model_to_dict

    payload = model_to_dict(model)
    payload["optimizer"] = None
    payload["history"] = []
    return payload


def _source_for_workers(client: Any, data: Any, source_path: str | None) -> Any:
    if source_path is not None:
        return ("path", source_path)
    if isinstance(data, np.memmap) and data.filename is not None:
        return ("memmap", str(data.filename), int(data.offset), data.dtype.str, data.shape,
                "F" if data.flags.f_contiguous and not data.flags.c_contiguous else "C")
    if isinstance(data, np.ndarray):
        return ("value", client.scatter([data], hash=False)[0])
    return ("value", data)


def _open_worker_source(spec: tuple[Any, ...]) -> Any:
    kind = spec[0]
    if kind == "path":
        return open_lazy(spec[1])[0]
    if kind == "memmap":
        _, filename, offset, dtype, shape, order = spec
        return np.memmap(filename, dtype=np.dtype(dtype), mode="r", offset=offset,
                         shape=tuple(shape), order=order)
    return spec[1]


def _cluster_task(payload: dict[str, Any], source_spec: tuple[Any, ...], axes: str, out: Any,
                  grid: BlockGrid, indices: list[int], tile: Any, overlap: Any,
                  batch_size: int) -> list[int]:
    """Runs on a worker: denoise a few blocks and write them to the shared output."""
    import dask

    from .checkpoint import model_from_dict
    from .devices import resolve_device

    model = model_from_dict(payload)
    source = ImageSource(_open_worker_source(source_spec), axes)
    with dask.config.set(scheduler="synchronous"):  # a dask input is read inside this task
        for block, result in denoise_blocks(model, source, grid, indices, tile=tile,
                                            overlap=overlap, batch_size=batch_size,
                                            device=resolve_device("auto").type):
            out[grid.out_index(block)] = grid.to_output_layout(result)
    return indices


def _check_shared_store(out: Any) -> None:
    store = getattr(out, "store", None)
    if type(store).__name__ == "MemoryStore":
        raise InputError(
            "With a dask cluster the output must be on storage the workers share (a path on "
            "a shared file system, or an object-store URL), not an in-memory zarr store."
        )


def _run_on_cluster(client: Any, model: GR2RModel, data: Any, source_path: str | None,
                    axes: str, arr: Any, grid: BlockGrid, state: _State, todo: list[int], *,
                    tile: Any, overlap: Any, batch_size: int,
                    should_stop: Callable[[], bool] | None) -> Iterator[ChunkProgress]:
    try:
        from distributed import as_completed
    except ImportError:
        raise InputError(
            "Running on a cluster needs dask.distributed: pip install 'napari-gr2r[cluster]'."
        ) from None
    _check_shared_store(arr)
    payload = client.scatter([_model_payload(model)], broadcast=True, hash=False)[0]
    source_spec = _source_for_workers(client, data, source_path)
    total = len(grid)
    skipped = total - len(todo)
    # a task takes as many blocks as make one batch through the network (whole blocks)
    per_task = max(1, batch_size // (grid.block[0] if grid.info.czyx[1] > 1 and model.dims == 2
                                     else 1)) if _fits_one_tile(model, grid, tile) else 1
    groups = [todo[i:i + per_task] for i in range(0, len(todo), per_task)]
    futures = [client.submit(_cluster_task, payload, source_spec, axes, arr, grid, group, tile,
                             overlap, batch_size, pure=False)
               for group in groups]
    written = 0
    try:
        for future in as_completed(futures):
            indices = future.result()
            state.done[indices] = True
            written += len(indices)
            _write_state(arr, state)
            yield ChunkProgress(int(state.done.sum()), total, written, skipped)
            if should_stop is not None and should_stop():
                raise InterruptedError("Denoising was stopped; run it again to resume.")
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
