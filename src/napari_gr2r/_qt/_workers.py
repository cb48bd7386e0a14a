"""The computations the widget and the menu commands run off the main thread.

Each is a plain generator or function over numpy arrays and :mod:`napari_gr2r.engine`, run by
a :class:`~._jobs.Job`; nothing here touches a layer or a widget. :class:`TrainingJob` is the
job that trains (with live previews) and then denoises the image with the best weights.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from napari_gr2r import engine
from napari_gr2r.engine.devices import capped_threads
from napari_gr2r.engine.inference.memory import denoise_source
from napari_gr2r.engine.io.hotpixels import hot_pixel_message
from napari_gr2r.engine.io.provenance import range_message

from ._jobs import Job, Refused, WorkerFailure
from ._preview import SliceRequest, preview_plane


@dataclass
class PreviewResult:
    """A denoised plane for the preview layer."""

    step: int
    data: np.ndarray
    layer_kwargs: dict[str, Any]


class TrainingPhase(str, Enum):
    """What a training job does after training: an event it yields (equal to its value)."""

    DENOISING = "denoising"
    """Training is over; the image is being denoised with the best weights."""


class TrainingJob(Job):
    """A training run, and the denoising of its result, that can be stopped from any thread,
    before or after it has started."""

    def __init__(self) -> None:
        super().__init__("train")
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
        super().request_stop()
        with self._lock:
            trainer = self.trainer
        if trainer is not None:
            trainer.request_stop()

    def stop_from_signal(self) -> None:
        """:meth:`request_stop` from a signal handler: flags only, and the trainer read
        without the lock (a handler must never wait for one: the main thread may hold it)."""
        if self.denoising:
            self._abort.set()
        super().stop_from_signal()
        trainer = self.trainer
        if trainer is not None:
            trainer.request_stop()  # an Event; a trainer built later gets the job's flag

    def abort(self) -> None:
        """End training and skip (or end) the denoising of its result."""
        self._abort.set()
        self.stop_training()

    def abandon(self) -> None:
        self._abort.set()
        super().abandon()

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
            progress: Callable[[int, int], Any] | None = None,
            noise: engine.NoiseCalibration | None = None) -> Iterator[Any]:
        """Build the trainer and train, yielding engine events and preview results.

        With ``denoise_after``, the image (the first, for a list) is then denoised with the best
        weights (also after a stop), yielding :attr:`TrainingPhase.DENOISING` first and calling
        ``progress(done, total)`` per tile. ``checkpoint_path``: the trainer's checkpoint file
        (the widget's autosave). Returns ``(model, denoised array)``; the array is None without
        ``denoise_after``, or when :meth:`abort` (or a stop while denoising) ended it.
        ``noise``: a calibration that a new model's generated noise follows instead of a fit.
        """
        try:
            with capped_threads():
                trainer = engine.Trainer(data, axes, config, model=model, device=device,
                                         checkpoint_path=checkpoint_path, noise=noise)
                with self._lock:
                    self.trainer = trainer
                yield from self._train(trainer)
                if not denoise_after or self._abort.is_set():
                    return trainer.model, None
                self.denoising = True
                yield TrainingPhase.DENOISING
                chosen = data[0] if isinstance(data, list) else data  # the chosen layer's
                try:
                    out = engine.denoise(trainer.model, chosen, axes=axes,
                                         device=str(trainer.device), progress=progress,
                                         should_stop=self._abort.is_set)
                except InterruptedError:
                    return trainer.model, None
                return trainer.model, out
        except RuntimeError as exc:
            raise WorkerFailure(str(exc)) from exc

    def _train(self, trainer: engine.Trainer) -> Iterator[Any]:
        """The trainer's events, with the previews asked for denoised between two steps."""
        for event in trainer.iter_fit():
            if self.stop_requested:
                # iter_fit() clears the trainer's flag when it starts: a stop asked for
                # while the trainer was being built is passed on here
                trainer.request_stop()
            yield event
            request, step = self._take_preview()
            if request is not None and not isinstance(event, engine.TrainingFinished):
                # one pass: a preview shows training's progress and must not slow it by
                # the model's test-time flips, which the result layer gets
                out = engine.denoise(trainer.model, request.data, axes=request.axes,
                                     device=str(trainer.device), tta=1)
                yield PreviewResult(step, *preview_plane(request, out))


@dataclass
class Denoised:
    """A denoised image and why it may be wrong (the image's values outside the model's
    training range), or None."""

    image: np.ndarray
    range_warning: str | None
    hot_pixels: str | None = None
    """What was said of the hot or dead pixels replaced (None: none were)."""


def denoise_array(model: engine.GR2RModel, data: Any, axes: str, device: str,
                  progress: Callable[[int, int], Any] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> Denoised | None:
    """Denoise a whole image (run in a worker); None when stopped.

    The range check comes back with the result instead of as a warning: a worker's warnings
    reach its ``warned`` signal through a process-wide warnings context (superqt's), which
    another worker closing meanwhile takes away. As :func:`napari_gr2r.engine.denoise`
    otherwise, which would check the range again.
    """
    source = model.open_source(data, axes)
    message = range_message(source, model.normalization.low, model.normalization.high)
    try:
        image = denoise_source(model, source, device=device, progress=progress,
                               should_stop=should_stop)
    except InterruptedError:
        return None
    found = len(source.hot_pixels_found)
    return Denoised(image, message, hot_pixel_message(found, advice=False) if found else None)


def denoise_into_zarr(model: engine.GR2RModel, data: Any, axes: str, out: str, device: str,
                      should_stop: Callable[[], bool] | None = None,
                      pixel_size: dict[str, Any] | None = None) -> Iterator[Any]:
    """Denoise a lazy image block by block into the zarr store ``out`` (run in a worker).

    Yields the engine's :class:`~napari_gr2r.engine.ChunkProgress` (the first one as soon as
    the store exists, with the range check's ``warning``) and returns the output zarr array,
    or None when stopped: the blocks written so far are kept, and running it again with the
    same model and store resumes. ``pixel_size``: the layer's, recorded in the store (see
    :func:`~napari_gr2r.engine.iter_denoise_to_zarr`). A store the engine refuses (another
    model's result, a foreign array) gives a :class:`Refused` with the engine's message for
    the user.
    """
    try:
        return (yield from engine.iter_denoise_to_zarr(model, data, axes, out, device=device,
                                                       should_stop=should_stop,
                                                       pixel_size=pixel_size))
    except InterruptedError:
        return None
    except engine.GR2RError as exc:
        return Refused(str(exc))  # a returned exception would be raised by the worker
