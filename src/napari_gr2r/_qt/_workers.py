"""The computations the widget and the menu commands run off the main thread.

Each is a plain generator or function over numpy arrays and :mod:`napari_gr2r.engine`;
napari's ``thread_worker`` runs it in a thread and delivers what it yields on the main
thread. Nothing here touches a layer or a widget.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from qtpy.QtCore import QObject, Signal

from napari_gr2r import engine

from ._layers import SliceRequest, finish_preview


def worker_threads() -> int:
    """Torch intra-op threads for a worker: one core fewer than the process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) - 1)


@contextlib.contextmanager
def capped_torch_threads() -> Iterator[int]:
    """Run the block with at most :func:`worker_threads` torch threads in this thread.

    Torch's intra-op (OpenMP) thread count is kept per thread, so the main thread keeps its
    own; the previous count is restored when the block ends, because napari reuses its
    worker threads. On a 2-core machine a step of a small network measured about
    25 ms with one thread against 200-300 ms with two inside napari (Qt's event loop and the
    second OpenMP thread compete for the cores).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(min(before, worker_threads()))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


class WorkerFailure(Exception):
    """An unexpected failure in a worker, carrying the original message.

    superqt's workers treat a ``RuntimeError`` escaping the function as a deleted worker
    and then emit neither ``errored`` nor ``finished``; wrapping it keeps both signals.
    """


@dataclass
class PreviewResult:
    """A denoised plane for the preview layer."""

    step: int
    data: np.ndarray
    layer_kwargs: dict[str, Any]


class TrainingJob:
    """A training run, and the denoising of its result, that can be stopped from any thread,
    before or after it has started."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._abort = threading.Event()
        self._lock = threading.Lock()
        self.trainer: engine.Trainer | None = None
        self.denoising = False
        """True once training is over and the result is being denoised."""
        self._preview: SliceRequest | None = None
        self._preview_step = 0

    def request_stop(self) -> None:
        """End training after its step (the result is still denoised, with the best weights),
        or, while the result is being denoised, end that."""
        if self.denoising:
            self._abort.set()
        self.stop_training()

    def stop_training(self) -> None:
        """End training after its step; the result is still denoised, with the best weights."""
        self._stop.set()
        with self._lock:
            trainer = self.trainer
        if trainer is not None:
            trainer.request_stop()

    def abort(self) -> None:
        """End training and skip (or end) the denoising of its result."""
        self._abort.set()
        self.stop_training()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def request_preview(self, request: SliceRequest, step: int) -> None:
        """Ask for a preview of ``request`` at the next event (replaces a pending one)."""
        with self._lock:
            self._preview, self._preview_step = request, step

    def _take_preview(self) -> tuple[SliceRequest | None, int]:
        with self._lock:
            request, step = self._preview, self._preview_step
            self._preview = None
        return request, step

    def run(self, data: Any, axes: str, config: engine.TrainConfig,
            model: engine.GR2RModel | None, device: str, denoise_after: bool = False,
            checkpoint_path: str | os.PathLike | None = None,
            progress: Callable[[int, int], Any] | None = None) -> Iterator[Any]:
        """Build the trainer and train, yielding engine events and preview results.

        With ``denoise_after``, the image (the first, for a list) is then denoised with the best
        weights (also after a stop), yielding ``"denoising"`` first and calling ``progress(done,
        total)`` per tile.
        ``checkpoint_path``: the trainer's checkpoint file (the widget's autosave).
        Returns ``(model, denoised array)``; the array is None without ``denoise_after``, or
        when :meth:`abort` (or a stop while denoising) ended it.
        """
        with capped_torch_threads():
            return (yield from self._run(data, axes, config, model, device, denoise_after,
                                         checkpoint_path, progress))

    def _run(self, data: Any, axes: str, config: engine.TrainConfig,
             model: engine.GR2RModel | None, device: str, denoise_after: bool,
             checkpoint_path: str | os.PathLike | None,
             progress: Callable[[int, int], Any] | None) -> Iterator[Any]:
        try:
            trainer = engine.Trainer(data, axes, config, model=model, device=device,
                                     checkpoint_path=checkpoint_path)
            with self._lock:
                self.trainer = trainer
            for event in trainer.iter_fit():
                if self._stop.is_set():
                    # iter_fit() clears the trainer's flag when it starts: a stop asked for
                    # while the trainer was being built is passed on here
                    trainer.request_stop()
                yield event
                request, step = self._take_preview()
                if request is not None and not isinstance(event, engine.TrainingFinished):
                    out = engine.denoise(trainer.model, request.data, axes=request.axes,
                                         device=str(trainer.device))
                    yield PreviewResult(step, finish_preview(request, out), request.layer_kwargs)
            if not denoise_after or self._abort.is_set():
                return trainer.model, None
            self.denoising = True
            yield "denoising"
            try:
                chosen = data[0] if isinstance(data, list) else data  # the chosen layer's
                out = engine.denoise(trainer.model, chosen, axes=axes, device=str(trainer.device),
                                     progress=progress, should_stop=self._abort.is_set)
            except InterruptedError:
                return trainer.model, None
            return trainer.model, out
        except RuntimeError as exc:
            raise WorkerFailure(str(exc)) from exc


def denoise_array(model: engine.GR2RModel, data: Any, axes: str, device: str,
                  progress: Callable[[int, int], Any] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """Denoise a whole image (run in a worker)."""
    try:
        with capped_torch_threads():
            return engine.denoise(model, data, axes=axes, device=device, progress=progress,
                                  should_stop=should_stop)
    except RuntimeError as exc:
        raise WorkerFailure(str(exc)) from exc


@dataclass
class Refused:
    """A job the engine refused to start, with its message for the user."""

    message: str


def denoise_into_zarr(model: engine.GR2RModel, data: Any, axes: str, out: str, device: str,
                      should_stop: Callable[[], bool] | None = None) -> Iterator[Any]:
    """Denoise a lazy image block by block into the zarr store ``out`` (run in a worker).

    Yields the engine's :class:`~napari_gr2r.engine.ChunkProgress` (the first one as soon as
    the store exists) and returns the output zarr array, or None when stopped: the blocks
    written so far are kept, and running it again with the same model and store resumes. A
    store the engine refuses (another model's result, a foreign array) gives a
    :class:`Refused` with the engine's message for the user.
    """
    try:
        with capped_torch_threads():
            return (yield from engine.iter_denoise_to_zarr(model, data, axes, out, device=device,
                                                           should_stop=should_stop))
    except InterruptedError:
        return None
    except engine.GR2RError as exc:
        return Refused(str(exc))  # a returned exception would be raised by the worker
    except RuntimeError as exc:
        raise WorkerFailure(str(exc)) from exc


class ProgressRelay(QObject):
    """Carries ``(done, total)`` from a worker thread's callback to the main thread."""

    progressed = Signal(int, int)

    def __call__(self, done: int, total: int) -> None:
        self.progressed.emit(int(done), int(total))
