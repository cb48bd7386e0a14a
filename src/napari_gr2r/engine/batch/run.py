"""Many files: expand inputs (files, folders, globs) and denoise them one by one into a folder.

:func:`denoise_files` is a generator of typed per-file events that the command line and the
widget both consume. Each file is read lazily and denoised block by block with the
out-of-core machinery of :mod:`.outofcore`: a zarr result is written straight into its
store (resumable: a store left by an interrupted run is continued), a TIFF result is
assembled in memory and written atomically (a temporary file, then a rename), so a result
is either whole or absent. Results already there are skipped unless ``overwrite``; a file
that cannot be read, or does not fit the model, is reported in one line and the others are
still done. With a ``dask.distributed`` client the files run as tasks on the cluster's
workers, one file per task.

>>> for event in denoise_files(model, ["raw/"], "denoised/"):        # doctest: +SKIP
...     print(event)
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import InputError, one_line
from ..inference.outofcore.distributed import scatter_model, worker_model
from ..inference.outofcore.plan import plan_blocks
from ..inference.outofcore.runner import iter_denoise_to_zarr
from ..inference.outofcore.store import default_out_chunks, model_fingerprint
from ..inference.tiling import check_arguments, tta_views
from ..io.formats import check_output_suffix, read_image, write_image
from ..io.hotpixels import HotPixelWarning, hot_pixel_message
from ..io.outputs import OutputClaim, check_not_input, overlap_message
from ..io.provenance import input_fingerprint
from ..model.model import GR2RModel
from .events import (
    FileDone,
    FileFailed,
    FileProgress,
    FilesEvent,
    FilesFinished,
    FileSkipped,
    FileStarted,
)
from .names import OVERWRITES_INPUT, expand_inputs, output_path, result_in, unreadable_reason

PathLike = str | os.PathLike


# --------------------------------------------------------------------------------------------
# one file


def denoise_file(model: GR2RModel, path: PathLike, out: PathLike, *, axes: str | None = None,
                 tile: Any = None, batch_size: int = 4, device: str = "auto",
                 overwrite: bool = False, should_stop: Callable[[], bool] | None = None,
                 precision: str | None = None,
                 tta: bool | int | None = None) -> Iterator[tuple[int, int]]:
    """Denoise one file into ``out`` (TIFF or zarr, by its extension), yielding
    ``(blocks done, blocks in all)``; returns ``(axes, shape, warning)``, the warning being
    why the result may be wrong (the file's values outside the model's training range) or
    None.

    Raises :class:`InputError` (or the reader's error) when the file cannot be used, and
    :class:`InterruptedError` when ``should_stop`` returns True (a TIFF result is then not
    written; a zarr result keeps its finished blocks).
    """
    import zarr

    out = Path(out)
    kind = check_output_suffix(out)
    location = os.fspath(path)
    check_not_input(out, [location], same=OVERWRITES_INPUT)
    data, meta = read_image(location)
    if axes is None:
        axes = meta.get("axes")
        if axes is None or len(axes) != len(data.shape):
            axes = None  # the model's axes, when the dimensions agree (else its message)
    source = model.open_source(data, axes)
    info = source.info
    if kind == "zarr":
        target: Any = os.fspath(out)
    else:
        grid = plan_blocks(model, info, tile)
        target = zarr.create_array(store=zarr.storage.MemoryStore(), shape=info.shape,
                                   chunks=default_out_chunks(grid), dtype="float32",
                                   fill_value=0.0)
    steps = iter_denoise_to_zarr(model, data, info.axes, target, tile=tile,
                                 batch_size=batch_size, device=device,
                                 should_stop=should_stop, overwrite=overwrite,
                                 precision=precision, tta=tta, name=location,
                                 pixel_size=meta)
    warning = None
    while True:
        try:
            step = next(steps)
        except StopIteration as stop:
            arr = stop.value
            break
        warning = warning or step.warning
        if step.hot_pixels:  # replaced, not wrong: said beside the file, not in its summary
            warnings.warn(f"{Path(location).name}: {hot_pixel_message(step.hot_pixels)}",
                          HotPixelWarning, stacklevel=2)
        yield step.done, step.total
    if kind != "zarr":  # the TIFF records what it is the result of, as a zarr store does
        out.parent.mkdir(parents=True, exist_ok=True)
        result_of = {"model": model_fingerprint(model), "input": input_fingerprint(data)}
        views = tta_views(tta, model)
        if views > 1:  # as a zarr store records it (one pass: the record it always had)
            result_of["views"] = views
        write_image(out, arr[...], info.axes, {**meta, "result_of": result_of})
    return info.axes, info.shape, warning


# --------------------------------------------------------------------------------------------
# many files


def denoise_files(model: GR2RModel, inputs: PathLike | Iterable[PathLike], out_dir: PathLike,
                  *, axes: str | None = None, suffix: str = "", out_format: str | None = None,
                  tile: Any = None, batch_size: int = 4, device: str = "auto",
                  overwrite: bool = False, client: Any = None,
                  should_stop: Callable[[], bool] | None = None,
                  precision: str | None = None,
                  tta: bool | int | None = None) -> Iterator[FilesEvent]:
    """Denoise every image ``inputs`` names into the folder ``out_dir``, file by file.

    Parameters
    ----------
    model : GR2RModel
    inputs : path or iterable of paths
        Files, zarr stores, folders (their image files, sorted) and glob patterns; see
        :func:`expand_inputs`.
    out_dir : path
        The folder for the results, created if missing. Each result is named after its
        input (see :func:`output_path`), with ``suffix`` before the extension.
    axes : str, optional
        The inputs' axes; by default each file's own (from its metadata), else the model's.
    out_format : ``"tif"``, ``"zarr"`` or None
        None: zarr inputs give zarr results, the others TIFFs.
    tile, batch_size, device, precision, tta
        As for :func:`~napari_gr2r.engine.denoise`.
    overwrite : bool
        Denoise files whose result is already there again (by default they are skipped; a
        zarr result left incomplete by an interrupted run is resumed either way).
    client : distributed.Client, optional
        Run the files on this dask cluster, one task per file (the inputs and ``out_dir``
        must be reachable from the workers); per-file progress is then not reported.
    should_stop : callable, optional
        Polled between files and blocks; when it returns True the run ends with
        ``FilesFinished(stopped=True)``; the file in progress gets no (TIFF) result.

    Yields
    ------
    FileStarted, FileProgress, FileDone, FileSkipped, FileFailed, then one FilesFinished.
    """
    t0 = time.perf_counter()
    if precision is not None:  # refused once, not once for every file
        check_arguments(model, tile, None, batch_size, device if client is None else None,
                        precision)
    tta = tta_views(tta, model)
    paths = expand_inputs(inputs)
    if not paths:
        raise InputError("No image files to denoise (the folders given hold none).")
    out_root = _output_folder(out_dir, paths)
    n = len(paths)
    # one run at a time per folder: two runs (two models) would mix their results in it
    claim = OutputClaim(os.fspath(out_root), folder=True).acquire()
    try:
        plan = _Plan(paths, out_root, suffix, out_format)
        yield from plan.sort(model, overwrite, tta)
        options = dict(axes=axes, tile=tile, batch_size=batch_size, overwrite=overwrite,
                       precision=precision, tta=tta)
        if client is not None:
            runs = _on_cluster(client, model, plan.todo, n, options, should_stop)
        else:
            runs = _in_process(model, plan.todo, n, options, device, should_stop)
        stopped = False
        for event in runs:
            if event is None:
                stopped = True
                break
            plan.count(event)
            yield event
    finally:
        claim.release()
    yield FilesFinished(n, plan.done, plan.skipped, tuple(plan.failed), plan.sorted_outputs(),
                        stopped, time.perf_counter() - t0,
                        tuple(p for p in paths if p in plan.warned))


def _output_folder(out_dir: PathLike, paths: list[str]) -> Path:
    """The output folder, created; refused when it is a file or lies inside an input (a
    folder inside an input store would change the input)."""
    out_root = Path(out_dir)
    if out_root.exists() and not out_root.is_dir():
        raise InputError(f"The output {out_root} is a file; with several inputs the output is "
                         "a folder.")
    local = [p for p in paths if "://" not in p]
    check_not_input(out_root, local, contains=False)
    out_root.mkdir(parents=True, exist_ok=True)
    return out_root


class _Plan:
    """Which files a run does, skips or refuses, and what it counts."""

    def __init__(self, paths: list[str], out_root: Path, suffix: str,
                 out_format: str | None) -> None:
        self.paths, self.n = paths, len(paths)
        self.outs = [output_path(p, out_root, suffix, out_format) for p in paths]
        self.todo: list[tuple[int, str, Path]] = []
        self.failed: list[tuple[str, str]] = []
        self.outputs: list[str] = []
        self.warned: set[str] = set()
        self.done = self.skipped = 0

    def sort(self, model: GR2RModel, overwrite: bool, views: int = 1) -> Iterator[FilesEvent]:
        """Events of the files refused or skipped before any work; the others go to
        :attr:`todo`."""
        claimed: dict[Path, str] = {}
        for index, (path, out) in enumerate(zip(self.paths, self.outs)):
            key = out.resolve()
            if key in claimed:
                reason: str | None = (f"its result {out.name} would also be the result of "
                                      f"{claimed[key]}; rename one of them")
            else:
                claimed[key] = path
                reason = overlap_message(out, [path], same=OVERWRITES_INPUT) or \
                    unreadable_reason(path)
            done = False
            if reason is None and not overwrite:
                done, reason = result_in(out, check_output_suffix(out), model, path, views)
            if reason is not None:
                self.failed.append((path, reason))
                yield FileFailed(self.n, index, path, reason)
            elif done:
                self.skipped += 1
                self.outputs.append(str(out))
                yield FileSkipped(self.n, index, path, str(out),
                                  "already done (overwrite to redo)")
            else:
                self.todo.append((index, path, out))

    def count(self, event: FilesEvent) -> None:
        if isinstance(event, FileDone):
            self.done += 1
            self.outputs.append(event.output)
            if event.warning is not None:
                self.warned.add(event.path)
        elif isinstance(event, FileFailed):
            self.failed.append((event.path, event.reason))

    def sorted_outputs(self) -> tuple[str, ...]:
        order = {str(out): i for i, out in enumerate(self.outs)}
        return tuple(sorted(self.outputs, key=lambda o: order.get(o, self.n)))


def _in_process(model: GR2RModel, todo: list[tuple[int, str, Path]], n: int,
                options: dict[str, Any], device: str,
                should_stop: Callable[[], bool] | None) -> Iterator[FilesEvent | None]:
    """Events of the files run here, one after another; None when stopped."""
    for index, path, out in todo:
        if should_stop is not None and should_stop():
            yield None
            return
        yield FileStarted(n, index, path, str(out))
        t0 = time.perf_counter()
        steps = denoise_file(model, path, out, device=device, should_stop=should_stop,
                             **options)
        try:
            while True:
                try:
                    blocks, total = next(steps)
                except StopIteration as stop:
                    file_axes, shape, warning = stop.value
                    break
                yield FileProgress(n, index, path, blocks, total)
        except InterruptedError:
            yield None
            return
        except Exception as exc:  # one broken file must not end the run
            yield FileFailed(n, index, path, one_line(exc))
            continue
        yield FileDone(n, index, path, str(out), file_axes, tuple(shape),
                       time.perf_counter() - t0, warning)


def _file_task(payload: dict[str, Any], path: str, out: str,
               options: dict[str, Any]) -> tuple[str, tuple[int, ...], float, str | None]:
    """Runs on a worker: one whole file (its result written by the worker)."""
    import dask

    from ..devices import resolve_device

    t0 = time.perf_counter()
    model = worker_model(payload)
    steps = denoise_file(model, path, out, device=resolve_device("auto").type, **options)
    with dask.config.set(scheduler="synchronous"):
        while True:
            try:
                next(steps)
            except StopIteration as stop:
                axes, shape, warning = stop.value
                return axes, tuple(shape), time.perf_counter() - t0, warning


def _on_cluster(client: Any, model: GR2RModel, todo: list[tuple[int, str, Path]], n: int,
                options: dict[str, Any],
                should_stop: Callable[[], bool] | None) -> Iterator[FilesEvent | None]:
    """Events of the files run as tasks on a dask cluster, as they finish; None when
    stopped (the files not yet finished are cancelled)."""
    try:
        from distributed import as_completed
    except ImportError:
        raise InputError("Running on a cluster needs dask.distributed: pip install "
                         "'napari-gr2r[cluster]'.") from None
    if not todo:
        return
    payload = scatter_model(client, model)
    futures = {}
    for index, path, out in todo:
        future = client.submit(_file_task, payload, os.path.abspath(path) if "://" not in path
                               else path, str(out.resolve()), options, pure=False)
        futures[future] = (index, path, out)
        yield FileStarted(n, index, path, str(out))
    try:
        for future in as_completed(list(futures)):
            index, path, out = futures[future]
            try:
                file_axes, shape, seconds, warning = future.result()
            except Exception as exc:  # the task's exception, re-raised here
                yield FileFailed(n, index, path, one_line(exc))
            else:
                yield FileDone(n, index, path, str(out), file_axes, shape, seconds, warning)
            if should_stop is not None and should_stop():
                yield None
                return
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
