"""The dask.distributed path of an out-of-core run: blocks as tasks on a cluster's workers.

The model is sent once to every worker (as the plain-type content of a model file), each
task reads its blocks from the input, writes their chunks to the shared output store and
returns, and the client records the finished blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ...devices import resolve_device
from ...errors import InputError
from ...io.sources import open_lazy
from ...model.checkpoint import model_from_dict, model_to_dict
from ...model.model import GR2RModel
from .local import denoise_blocks
from .plan import BlockGrid, fits_one_tile
from .store import ChunkProgress, RunState, write_state


def scatter_model(client: Any, model: GR2RModel) -> Any:
    """Send ``model`` once to every worker of ``client``: a future of its plain-type content
    (a model file's, without the optimiser state and history), for :func:`worker_model`."""
    payload = model_to_dict(model)
    payload["optimizer"] = None
    payload["history"] = []
    return client.scatter([payload], broadcast=True, hash=False)[0]


_WORKER_MODEL: list[Any] = []
"""On a worker: the payload of the last run and the model built from it."""


def worker_model(payload: dict[str, Any]) -> GR2RModel:
    """On a worker: the model of a :func:`scatter_model` payload, built once per run (the
    scattered payload is the same object for every task of the run on this worker)."""
    if _WORKER_MODEL and _WORKER_MODEL[0] is payload:
        return _WORKER_MODEL[1]
    model = model_from_dict(payload)
    _WORKER_MODEL[:] = [payload, model]
    return model


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
                  batch_size: int, precision: str | None = None,
                  tta: int | None = None) -> list[int]:
    """Runs on a worker: denoise a few blocks and write them to the shared output."""
    import dask

    model = worker_model(payload)
    source = model.open_source(_open_worker_source(source_spec), axes)
    with dask.config.set(scheduler="synchronous"):  # a dask input is read inside this task
        for block, result in denoise_blocks(model, source, grid, indices, tile=tile,
                                            overlap=overlap, batch_size=batch_size,
                                            device=resolve_device("auto").type,
                                            precision=precision, tta=tta):
            out[grid.out_index(block)] = grid.to_output_layout(result)
    return indices


def _check_shared_store(out: Any) -> None:
    store = getattr(out, "store", None)
    if type(store).__name__ == "MemoryStore":
        raise InputError(
            "With a dask cluster the output must be on storage the workers share (a path on "
            "a shared file system, or an object-store URL), not an in-memory zarr store."
        )


def run_on_cluster(client: Any, model: GR2RModel, data: Any, source_path: str | None,
                   axes: str, arr: Any, grid: BlockGrid, state: RunState, todo: list[int], *,
                   tile: Any, overlap: Any, batch_size: int,
                   should_stop: Callable[[], bool] | None,
                   precision: str | None = None,
                   tta: int | None = None) -> Iterator[ChunkProgress]:
    """Denoise the blocks ``todo`` on ``client``'s workers into ``arr``, yielding progress."""
    try:
        from distributed import as_completed
    except ImportError:
        raise InputError(
            "Running on a cluster needs dask.distributed: pip install 'napari-gr2r[cluster]'."
        ) from None
    _check_shared_store(arr)
    payload = scatter_model(client, model)
    source_spec = _source_for_workers(client, data, source_path)
    total = len(grid)
    skipped = total - len(todo)
    # a task takes as many blocks as make one batch through the network (whole blocks)
    per_task = max(1, batch_size // (grid.block[0] if grid.info.czyx[1] > 1 and model.dims == 2
                                     else 1)) if fits_one_tile(model, grid, tile) else 1
    groups = [todo[i:i + per_task] for i in range(0, len(todo), per_task)]
    futures = [client.submit(_cluster_task, payload, source_spec, axes, arr, grid, group, tile,
                             overlap, batch_size, precision, tta, pure=False)
               for group in groups]
    written = 0
    try:
        for future in as_completed(futures):
            indices = future.result()
            state.done[indices] = True
            written += len(indices)
            write_state(arr, state)
            yield ChunkProgress(int(state.done.sum()), total, written, skipped)
            if should_stop is not None and should_stop():
                raise InterruptedError("Denoising was stopped; run it again to resume.")
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
