"""The out-of-core front door: a lazy image in, a zarr store out, block by block, resumable.

:func:`iter_denoise_to_zarr` opens the input and the output, plans the blocks
(:mod:`.plan`), reads or starts the store's record (:mod:`.store`) and runs the blocks not
yet done in this process (:mod:`.local`) or on a dask cluster (:mod:`.distributed`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from ...errors import GR2RError, OutputError
from ...io.formats import read_image
from ...io.hotpixels import HotPixelWarning, hot_pixel_message
from ...io.omezarr import tag_result
from ...io.outputs import OutputClaim, check_not_input, store_location
from ...io.provenance import RangeWarning, input_fingerprint, range_label, range_message
from ...io.pyramid import pending_levels, write_levels
from ...io.sources import open_lazy
from ...model.model import GR2RModel
from ..tiling import check_arguments, tta_views
from .distributed import run_on_cluster
from .local import run_local
from .plan import check_chunks, input_z_chunk, plan_blocks
from .store import (
    ChunkProgress,
    default_out_chunks,
    existing_array,
    model_fingerprint,
    open_output,
    resume_state,
)


def iter_denoise_to_zarr(model: GR2RModel, data: Any, axes: str | None, out: Any, *,
                         tile: Any = None, overlap: Any = None, chunks: Any = None,
                         batch_size: int = 4, device: str = "auto", client: Any = None,
                         should_stop: Callable[[], bool] | None = None,
                         overwrite: bool = False, precision: str | None = None,
                         tta: bool | int | None = None, name: str | None = None,
                         pixel_size: dict[str, Any] | None = None,
                         ) -> Iterator[ChunkProgress]:
    """Generator form of :func:`denoise_to_zarr`: yields :class:`ChunkProgress` per block.

    The first step comes as soon as the output exists, with the range check's message as
    its ``warning`` (else None): the generator issues no warning. ``name``: the file the
    message names (by default the input's path or store). ``pixel_size``: as for
    :func:`denoise_to_zarr`.

    A large plane's OME-Zarr result then gets lower-resolution levels (a last step says how
    many: :mod:`napari_gr2r.engine.io.pyramid`).

    The generator's return value (``StopIteration.value``, or napari's worker ``returned``
    signal) is the output zarr array. Stopping the iteration, or ``should_stop`` returning
    True, leaves every finished block recorded, so a later call resumes. While it runs the
    output is claimed (:class:`~napari_gr2r.engine.io.outputs.OutputClaim`): another run into
    the same store fails with :class:`~napari_gr2r.engine.errors.OutputError`.
    """
    source_path = None
    if isinstance(data, (str, os.PathLike)):
        source_path = os.fspath(data)
        data, file_axes = open_lazy(source_path)
        axes = axes or file_axes
        pixel_size = pixel_size or _file_pixel_size(source_path, axes)
    # a cluster's workers have their own devices: there, only precision's name is checked
    batch_size = check_arguments(model, tile, overlap, batch_size,
                                 device if client is None else None, precision)
    views = tta_views(tta, model)
    if chunks is not None:
        check_chunks(model, chunks)
    source = model.open_source(data, axes)
    info = source.info
    name = name or source_path or store_location(data)
    warning = range_message(source, model.normalization.low, model.normalization.high,
                            range_label(name))

    location = _output_location(out, data, source_path)
    existing = None
    if not isinstance(out, (str, os.PathLike)):
        existing = tuple(int(c) for c in out.chunks) if hasattr(out, "chunks") else None
    elif not overwrite:
        found = existing_array(os.fspath(out))
        existing = tuple(int(c) for c in found.chunks) if found is not None else None
    grid = plan_blocks(model, info, tile, chunks, existing, input_z_chunk(data, info))

    claim = OutputClaim(location).acquire()  # a second run into this store fails here
    try:
        arr, _ = open_output(out, info.axes, info.shape, default_out_chunks(grid), overwrite)
        if pixel_size is not None:
            tag_result(arr, info.axes, pixel_size)
        if existing is None:
            grid = plan_blocks(model, info, tile, chunks, tuple(arr.chunks),
                               input_z_chunk(data, info))
        total = len(grid)
        state = resume_state(arr, _settings(model, data, source_path, grid, views), total,
                             overwrite, owner=claim.record)
        skipped = int(state.done.sum())
        todo = [i for i in range(total) if not state.done[i]]
        yield ChunkProgress(skipped, total, 0, skipped, warning)
        if client is None:
            yield from _local(model, source, arr, grid, state, todo, tile=tile,
                              overlap=overlap, batch_size=batch_size, device=device,
                              should_stop=should_stop, precision=precision, tta=views)
        else:
            yield from run_on_cluster(client, model, data, source_path, axes, arr, grid, state,
                                      todo, tile=tile, overlap=overlap, batch_size=batch_size,
                                      should_stop=should_stop, precision=precision,
                                      tta=views)
        yield from _levels(arr, info.axes, total, skipped, should_stop)  # every block is done
    finally:
        claim.release()
    return arr


def _levels(arr: Any, axes: str, total: int, skipped: int,
            should_stop: Callable[[], bool] | None) -> Iterator[ChunkProgress]:
    """A finished result's lower-resolution levels: a step before writing them (they take a
    while, with no blocks to count), a step after."""
    pending = pending_levels(arr)
    if pending:
        yield ChunkProgress(total, total, 0, skipped, levels_pending=pending)
    levels = write_levels(arr, axes, should_stop)
    if levels:
        yield ChunkProgress(total, total, 0, skipped, levels=levels)


def _settings(model: GR2RModel, data: Any, source_path: str | None, grid: Any,
              views: int) -> dict[str, Any]:
    """What a store records of its run, so that only the same run resumes it."""
    info = grid.info
    settings = {"model": model_fingerprint(model), "input": input_fingerprint(data),
                "source": source_path or store_location(data) or "", "axes": info.axes,
                "shape": list(info.shape), "block": list(grid.block), "halo": list(grid.halo)}
    if views > 1:  # stores of one pass keep the record they had before test-time flips
        settings["views"] = views
    return settings


def _output_location(out: Any, data: Any, source_path: str | None) -> str | None:
    """Where ``out`` lives (None for an in-memory array); raises when it is, lies in or holds
    the input, whatever ``overwrite`` says."""
    if out is data or (hasattr(out, "store") and hasattr(data, "store") and
                       out.store == data.store and getattr(out, "path", None) ==
                       getattr(data, "path", None)):
        raise OutputError("The output array is the input; denoise into another array.")
    location = os.fspath(out) if isinstance(out, (str, os.PathLike)) else store_location(out)
    if location is not None:
        check_not_input(location, [source_path, store_location(data)])
    return location


def _file_pixel_size(path: str, axes: str | None) -> dict[str, Any] | None:
    """The pixel size in an input file's metadata, where its axes are those denoised."""
    try:
        meta = read_image(path)[1]
    except GR2RError:  # metadata the reader refuses: the result goes without a pixel size
        return None
    return meta if meta.get("scale") is not None and meta.get("axes") == axes else None


def _local(model: GR2RModel, source: Any, arr: Any, grid: Any, state: Any, todo: list[int],
           **kwargs: Any) -> Iterator[ChunkProgress]:
    """:func:`run_local`, then a last step with the hot and dead pixels it replaced."""
    yield from run_local(model, source, arr, grid, state, todo, **kwargs)
    if source.hot_pixels_found:
        total, skipped = len(grid), len(grid) - len(todo)
        yield ChunkProgress(total, total, 0, skipped, hot_pixels=len(source.hot_pixels_found))


def denoise_to_zarr(model: GR2RModel, data: Any, axes: str | None, out: Any, *,
                    tile: Any = None, overlap: Any = None, chunks: Any = None,
                    batch_size: int = 4, device: str = "auto", client: Any = None,
                    progress: Callable[[int, int], Any] | None = None,
                    should_stop: Callable[[], bool] | None = None,
                    overwrite: bool = False, precision: str | None = None,
                    tta: bool | int | None = None,
                    pixel_size: dict[str, Any] | None = None) -> Any:
    """Denoise an image of any size into a zarr array, block by block; resumable.

    It is longer than 80 lines because its docstring documents every parameter.

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
        with chunks aligned with the blocks, as an OME-Zarr image (the pixels in its array
        ``0``; a plane larger than 4096 pixels on a side also gets lower-resolution levels,
        :mod:`napari_gr2r.engine.io.pyramid`) where the axes fit OME-Zarr's order (``TCZYX``
        and its subsets, ``SYX``), else as a zarr array
        (:mod:`napari_gr2r.engine.io.omezarr`); an existing output of an interrupted run
        with the same model and settings is resumed (blocks already written are skipped);
        an existing zarr array given as an object is written into, and its chunks set the
        blocks.
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
        Start again even if ``out`` holds another result. An output that is, lies inside or
        contains the input is refused whatever ``overwrite`` says, and so is a store another
        run is writing.
    precision : str, optional
        As for :func:`~napari_gr2r.engine.denoise` (the model's own by default).
    tta : bool, int or None
        Flips and quarter turns averaged per tile, as for :func:`~napari_gr2r.engine.denoise`
        (the model's own by default); recorded with the store, so a resumed run averages
        the same views.
    pixel_size : dict, optional
        ``{"scale": [one number per axis], "unit": "µm"}`` recorded in the result's
        attributes and OME-Zarr metadata from the first block on; by default the input
        file's own when ``data`` is a path whose metadata has these axes.

    Returns
    -------
    zarr.Array
        The output array (an OME-Zarr result's level ``0``); ``dask.array.from_zarr(result)``
        gives a lazy view for napari.

    Warns
    -----
    napari_gr2r.engine.io.provenance.RangeWarning
        When the image's values lie mostly outside the range the model was trained on.
    napari_gr2r.engine.io.hotpixels.HotPixelWarning
        When isolated hot or dead pixels were replaced (the model's ``config.hot_pixels``).
    """
    gen = iter_denoise_to_zarr(model, data, axes, out, tile=tile, overlap=overlap, chunks=chunks,
                               batch_size=batch_size, device=device, client=client,
                               should_stop=should_stop, overwrite=overwrite,
                               precision=precision, tta=tta, pixel_size=pixel_size)
    while True:
        try:
            step = next(gen)
        except StopIteration as stop:
            return stop.value
        if step.warning is not None:
            warnings.warn(step.warning, RangeWarning, stacklevel=2)
        if step.hot_pixels:
            warnings.warn(hot_pixel_message(step.hot_pixels), HotPixelWarning, stacklevel=2)
        if progress is not None:
            progress(step.done, step.total)


def denoise_lazy(model: GR2RModel, data: Any, axes: str | None, out: Any, **kwargs: Any) -> Any:
    """Denoise into ``out`` (see :func:`denoise_to_zarr`) and return a dask array over it.

    The dask array reads the result chunk by chunk: napari shows it as a lazily loaded layer.
    """
    import dask.array as da

    return da.from_zarr(denoise_to_zarr(model, data, axes, out, **kwargs))
