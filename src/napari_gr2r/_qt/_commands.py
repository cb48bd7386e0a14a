"""One-click menu commands: train and denoise, or denoise with a saved model.

They run in napari thread workers with napari's cancelable progress bars (the activity dock's
Cancel): cancelling training ends it after the current step and denoises with the best weights
so far; cancelling the denoising ends it without a result. Bad choices end in a napari
notification, never a traceback.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

from napari.utils import cancelable_progress
from napari.utils.notifications import show_info, show_warning

from napari_gr2r import engine

from ._axes import axes_guess
from ._jobs import Job, ProgressRelay
from ._layers import (
    LARGE_BYTES,
    LayerChoiceError,
    check_axes,
    check_model_fits,
    is_large,
    layer_array,
)
from ._results import add_result_layer
from ._workers import TrainingJob, TrainingPhase, denoise_array


def show_activity(viewer: Any) -> None:
    """Open napari's activity dock, where the command's progress bar and Cancel are.

    napari has no public way to open it; without this private access (should it go away),
    the command still runs, its progress in the dock the user opens from the status bar.
    """
    with warnings.catch_warnings(), contextlib.suppress(AttributeError, RuntimeError, TypeError):
        warnings.simplefilter("ignore", FutureWarning)  # napari's notice of private access
        viewer.window._qt_window.statusBar()._toggle_activity_dock(True)


def _active_image(viewer: Any, training: bool) -> tuple[Any, str]:
    layer = viewer.layers.selection.active
    if layer is None:
        raise LayerChoiceError("No layer selected: select an image layer in the layer list first.")
    axes = axes_guess(layer).axes if hasattr(layer, "rgb") else ""
    check_axes(layer, axes, training=training)
    if is_large(layer):
        raise LayerChoiceError(
            f"Layer {layer.name!r} is large (dask, zarr, multiscale or over "
            f"{LARGE_BYTES // 2**20} MiB): the menu commands would load the result into "
            "memory. Use Plugins > GR2R Denoise, which denoises it block by block into a "
            "zarr store."
        )
    return layer, axes


def _add_result(viewer: Any, layer: Any, result: Any, model: engine.GR2RModel) -> Any:
    out = add_result_layer(viewer, layer, result, model)
    show_info(f"GR2R: denoised {layer.name!r} into {out.name!r}.")
    return out


def _stop_when_removed(viewer: Any, layer: Any, stop: Any) -> Any:
    """Stop the work when the input layer leaves the viewer (closing the viewer does that)."""

    def on_removed(event: Any) -> None:
        if event.value is layer:
            stop()

    viewer.layers.events.removed.connect(on_removed)
    return on_removed


def train_and_denoise(viewer: Any, config: engine.TrainConfig, device: str = "auto") -> Any:
    """Train on the active image layer with ``config``, then denoise it into a new layer.

    Returns the started worker, or None when the active layer cannot be used.
    """
    try:
        layer, axes = _active_image(viewer, training=True)
    except LayerChoiceError as exc:
        show_warning(f"GR2R: {exc}")
        return None
    job = TrainingJob()
    relay = ProgressRelay()
    # one bar for the whole command, opened here and closed when the worker finishes
    bar = cancelable_progress(total=config.steps, desc=f"GR2R: training on {layer.name}")
    phase = {"denoising": False}
    on_removed = _stop_when_removed(viewer, layer, job.abort)

    def on_event(event: Any) -> None:
        if phase["denoising"]:
            return
        if bar.is_canceled:  # Cancel in the activity dock: stop, keep the best weights
            job.stop_training()
        if isinstance(event, engine.TrainingProgress):
            bar.update(max(0, event.step - bar.n))
        elif event is TrainingPhase.DENOISING:
            phase["denoising"] = True
            bar.is_canceled = False  # from here on, Cancel ends the denoising without a result
            bar.set_description(f"GR2R: denoising {layer.name}")
            bar.n = 0
            bar.total = 0

    def on_progress(done: int, total: int) -> None:
        if bar.is_canceled:
            job.abort()
        bar.total = total
        bar.update(max(0, done - bar.n))

    def on_returned(result: tuple[Any, Any]) -> None:
        model, out = result
        if out is None:
            if layer in viewer.layers:  # else it was removed, which ended the job
                show_info(f"GR2R: cancelled; no result for {layer.name!r}.")
        elif layer in viewer.layers:
            _add_result(viewer, layer, out, model)

    def on_finished() -> None:
        bar.close()
        relay.progressed.disconnect(on_progress)
        viewer.layers.events.removed.disconnect(on_removed)

    relay.progressed.connect(on_progress)
    show_activity(viewer)
    worker = job.start(job.run, layer_array(layer), axes, config, None, device,
                       denoise_after=True, progress=relay, yielded=on_event,
                       returned=on_returned, finished=on_finished)
    job.stop_on_sigterm()  # SIGTERM ends it as Cancel does: the best weights denoise the image
    return worker


def denoise_with_model(viewer: Any, path: str, device: str = "auto") -> Any:
    """Denoise the active image layer with the model saved at ``path`` into a new layer."""
    try:
        layer, axes = _active_image(viewer, training=False)
        model = engine.load_model(path)
        if len(model.axes) == len(axes) and model.axes != axes:
            try:
                check_model_fits(model, check_axes(layer, model.axes))
                axes = model.axes
            except LayerChoiceError:
                pass
        check_model_fits(model, check_axes(layer, axes))
    except (LayerChoiceError, engine.GR2RError, OSError) as exc:
        show_warning(f"GR2R: {exc}")
        return None
    job = Job("denoise")
    relay = ProgressRelay()
    bar = cancelable_progress(total=0, desc=f"GR2R: denoising {layer.name}")

    def on_progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(max(0, done - bar.n))

    relay.progressed.connect(on_progress)
    on_removed = _stop_when_removed(viewer, layer, job.request_stop)

    def on_returned(result: Any) -> None:
        if result is None:
            show_info(f"GR2R: cancelled; no result for {layer.name!r}.")
        elif layer in viewer.layers:
            if result.range_warning is not None:  # returned, not warned: see denoise_array
                show_warning(f"GR2R: {result.range_warning}")
            if result.hot_pixels is not None:
                show_info(f"GR2R: {result.hot_pixels}")
            _add_result(viewer, layer, result.image, model)

    def on_finished() -> None:
        bar.close()
        relay.progressed.disconnect(on_progress)
        viewer.layers.events.removed.disconnect(on_removed)

    show_activity(viewer)
    # the worker polls the bar between tiles: Cancel in the activity dock ends it there
    return job.start(denoise_array, model, layer_array(layer), axes, device, progress=relay,
                     should_stop=lambda: job.should_stop() or bar.is_canceled,
                     returned=on_returned, finished=on_finished)
