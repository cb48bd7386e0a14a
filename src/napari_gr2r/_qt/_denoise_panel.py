"""The denoise panel: Denoise the chosen layer with the current model; save and load models.

A layer that fits in memory is denoised tile by tile into a new layer. A large one (dask, zarr,
multiscale or over :data:`~._layers.LARGE_BYTES`) is denoised block by block into a zarr store,
shown as a lazy layer from its first block on and refreshed as blocks land; stopping keeps the
blocks written, and denoising into the same store again resumes.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from napari.utils.notifications import show_info, show_warning
from qtpy.QtWidgets import QFileDialog, QGridLayout, QPushButton, QWidget

from napari_gr2r import engine
from napari_gr2r.engine.io.hotpixels import hot_pixel_message
from napari_gr2r.engine.io.pyramid import result_levels

from ._jobs import Job, ProgressRelay, Refused
from ._layers import (
    DENOISED_SUFFIX,
    LayerChoiceError,
    check_axes,
    check_model_fits,
    denoised_name,
    is_large,
    layer_array,
    layer_pixel_size,
)
from ._results import add_result_layer, estimate_metadata
from ._state import Panel, WidgetState
from ._workers import Denoised, denoise_array, denoise_into_zarr

MODEL_FILES = "GR2R model (*.gr2r.pt *.pt)"


def model_file_name(layer: Any) -> str:
    """A model file's default name: the image's name, without characters files cannot hold."""
    name = "" if layer is None else layer.name.replace(DENOISED_SUFFIX, "")
    name = re.sub(r'[\\/:*?"<>|]+', "_", name).strip(" .")
    return f"{name or 'model'}.gr2r.pt"


SAVE_HINT = (" To save it with its pixel size: File > Save Selected Layers…, file type "
             "'napari-gr2r TIFF with pixel size'.")


class DenoisePanel(Panel):
    """Save model…, Load model… and Denoise."""

    def __init__(self, state: WidgetState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        self.zarr_out: str | None = None
        """Output store for large layers; None asks with a save dialog at each Denoise."""
        self._zarr_layer: Any = None
        self._relay: ProgressRelay | None = None
        self._warning: str | None = None
        """The engine's warning about the running denoising (data outside the model's range)."""
        buttons = QGridLayout(self)
        buttons.setContentsMargins(0, 0, 0, 0)
        self.save_button = QPushButton("Save model…")
        self.save_button.clicked.connect(self._on_save_clicked)
        self.load_button = QPushButton("Load model…")
        self.load_button.clicked.connect(self._on_load_clicked)
        self.denoise_button = QPushButton("Denoise")
        self.denoise_button.setToolTip("Denoise the whole image into a new layer '<image> [denoised]'.")
        self.denoise_button.clicked.connect(self.start)
        buttons.addWidget(self.save_button, 0, 0)
        buttons.addWidget(self.load_button, 0, 1)
        self.files_button = QPushButton("Denoise files…")
        self.files_button.setToolTip("Apply the current model to image files or to every image "
                                     "in a folder, the results into a folder.")
        self.files_button.clicked.connect(self.show_files_panel)
        self.files_panel: Any = None
        """The Denoise files panel, once opened."""
        buttons.addWidget(self.denoise_button, 1, 0, 1, 2)
        buttons.addWidget(self.files_button, 2, 0, 1, 2)
        for signal in (state.model_changed, state.choice_changed, state.busy_changed):
            signal.connect(self._update_buttons)
        self._update_buttons()

    def _update_buttons(self) -> None:
        state = self.state
        self.save_button.setEnabled(state.model is not None and not state.training)
        self.load_button.setEnabled(not state.busy)
        self.denoise_button.setEnabled(state.model is not None and not state.busy and
                                       state.chosen_layer() is not None)

    # ------------------------------------------------------------------------------ many files
    def show_files_panel(self) -> Any:
        """Open the Denoise files panel: the widget shows it as a tab (a window without one)."""
        from ._files_panel import FilesPanel

        if self.files_panel is None:
            self.files_panel = FilesPanel(self.state)
        self.state.files_requested.emit(self.files_panel)
        if self.files_panel.parentWidget() is None:  # no widget took it: a window of its own
            self.files_panel.show()
            self.files_panel.raise_()
        return self.files_panel

    # ------------------------------------------------------------------------------- denoising
    def start(self) -> None:
        """Denoise the chosen layer with the current model, in memory or into a zarr store."""
        state = self.state
        if state.busy:
            return
        layer = state.chosen_layer()
        axes = state.axes
        try:
            if state.model is None:
                raise LayerChoiceError("No model: train one or load one first.")
            info = check_axes(layer, axes)
            check_model_fits(state.model, info)
        except LayerChoiceError as exc:
            state.reject(str(exc))
            return
        data = layer_array(layer)
        if is_large(layer):
            self._denoise_lazily(layer, data, axes)
            return
        relay = ProgressRelay()
        relay.progressed.connect(self._on_progress)
        self._relay = relay
        state.progress_busy("denoising…")
        state.show_message(f"Denoising {layer.name!r}…")
        self._warning = None
        job = Job("denoise")
        if state.run_job(job, denoise_array, state.model, data, axes, state.settings.device_id(),
                         progress=relay, should_stop=job.should_stop,
                         returned=partial(self._on_denoised, layer, state.model),
                         errored=state.report_worker_error, finished=self._on_finished,
                         refused=self._on_refused) is not None:
            job.stop_on_sigterm()  # as Stop: no result, the layers as they were

    def _ask_zarr_out(self, layer: Any) -> str | None:
        """The zarr store for a large layer's result: preset, or chosen in a save dialog."""
        if self.zarr_out is not None:
            return self.zarr_out
        path, _ = QFileDialog.getSaveFileName(
            self, "Denoise into a zarr store", f"{layer.name}-denoised.zarr",
            "Zarr store (*.zarr)")
        if not path:
            return None
        return path if path.endswith(".zarr") else f"{path}.zarr"

    def _denoise_lazily(self, layer: Any, data: Any, axes: str) -> None:
        """Denoise a large layer block by block into a zarr store, shown while it is written."""
        state = self.state
        out = self._ask_zarr_out(layer)
        if out is None:
            return
        self._zarr_layer = None
        state.progress_busy("denoising…")
        state.show_message(f"Denoising {layer.name!r} block by block into {out}…")
        self._warning = None
        job = Job("denoise")
        if state.run_job(job, denoise_into_zarr, state.model, data, axes, out,
                         state.settings.device_id(), should_stop=job.should_stop,
                         pixel_size=layer_pixel_size(layer, axes),
                         yielded=partial(self._on_zarr_progress, layer, out),
                         returned=partial(self._on_zarr_returned, layer, out),
                         errored=state.report_worker_error,
                         finished=self._on_finished) is not None:
            job.stop_on_sigterm()  # as Stop: the blocks written are kept, and resume

    def _on_zarr_progress(self, layer: Any, out: str, step: engine.ChunkProgress) -> None:
        if step.warning is not None:  # the engine's range check, on the first step
            self._warning = step.warning
            show_warning(step.warning)
            self.state.show_message(f"Denoising… Warning: {step.warning}", warning=True)
        if step.hot_pixels:  # on the last step of the run
            show_info(hot_pixel_message(step.hot_pixels, advice=False))
        self._on_progress(step.done, step.total, unit="block")
        if self._zarr_layer is None:
            # the store exists from the first step on: show it now, loading chunks as browsed
            import dask.array as da

            name = denoised_name(layer)
            if name in self.viewer.layers:
                del self.viewer.layers[name]
            lazy = da.from_zarr(engine.open_result(out))
            self._zarr_layer = add_result_layer(self.viewer, layer, lazy, self.state.model,
                                                store=out, **self._estimate(layer))
        elif step.levels_pending:
            self.state.show_message(
                f"Writing {step.levels_pending} lower-resolution levels of the result, so that "
                "napari can show it without reading whole planes…")
        elif step.levels and self._zarr_layer in self.viewer.layers:
            # a large plane's result has lower-resolution levels now: shown as one multiscale
            # layer, so that napari reads the level the view needs, not the whole plane
            import dask.array as da

            levels = result_levels(engine.open_result(out))
            self._zarr_layer = add_result_layer(
                self.viewer, layer, [da.from_zarr(level) for level in levels],
                self.state.model, store=out, **self._estimate(layer))
        elif step.written and self._zarr_layer in self.viewer.layers:  # not if removed
            self._zarr_layer.refresh()

    def _on_zarr_returned(self, layer: Any, out: str, result: Any) -> None:
        state = self.state
        if self._zarr_layer is not None and self._zarr_layer in self.viewer.layers:
            self._zarr_layer.refresh()
        if isinstance(result, Refused):
            state.progress_idle()
            state.reject(result.message)
            return
        if result is None:
            state.progress.setFormat("stopped")
            state.show_message(f"Stopped; the blocks written so far are kept in {out}. "
                               "Denoise into the same store again to resume.")
            return
        state.progress.setFormat("done")
        self._show_done(f"Denoised {layer.name!r} into {denoised_name(layer)!r}, stored in {out}.")

    def _show_done(self, text: str) -> None:
        """The message at the end of a denoising, with the engine's warning about it."""
        if self._warning:
            self.state.show_message(f"{text} Warning: {self._warning}", warning=True)
        else:
            self.state.show_message(text)

    def _on_refused(self, message: str) -> None:
        self.state.progress_idle()
        self.state.reject(message)

    def _on_progress(self, done: int, total: int, unit: str = "tile") -> None:
        progress = self.state.progress
        progress.setRange(0, max(total, 1))
        progress.setValue(done)
        progress.setFormat(f"denoising: {unit} {done}/{total}")

    def _on_denoised(self, layer: Any, model: Any, result: Denoised | None) -> None:
        if result is None:
            self.state.progress.setFormat("stopped")
            self.state.show_message(f"Stopped; no result for {layer.name!r}.")
            return
        if layer not in self.viewer.layers:
            return
        if result.range_warning is not None:  # returned, not warned: see denoise_array
            self._warning = result.range_warning
            show_warning(result.range_warning)
        if result.hot_pixels is not None:
            show_info(result.hot_pixels)
        out = add_result_layer(self.viewer, layer, result.image, model, **self._estimate(layer))
        # napari's own TIFF writer drops the pixel size: say where the one that keeps it is
        keep = SAVE_HINT if any(float(v) != 1 for v in out.scale) else ""
        self._show_done(f"Denoised {layer.name!r} into {out.name!r}.{keep}")
        self.state.progress.setFormat("done")

    def _estimate(self, layer: Any) -> dict[str, Any]:
        """The current model's error estimate on ``layer`` (from the Noise panel), if any."""
        report = self.state.quality_of(self.state.model, layer.name)
        return {} if report is None else {"estimate": estimate_metadata(self.state.model, report)}

    def _on_finished(self) -> None:
        self._zarr_layer = None
        self._relay = None

    # ----------------------------------------------------------------------------- model files
    def _on_save_clicked(self) -> None:
        self.save_model()

    def _on_load_clicked(self) -> None:
        self.load_model()

    def save_model(self, path: str | None = None) -> None:
        """Save the current model to ``path`` (asked for in a dialog when None)."""
        state = self.state
        if state.model is None:
            state.reject("No model to save: train one or load one first.")
            return
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save GR2R model",
                                                  model_file_name(state.chosen_layer()),
                                                  MODEL_FILES)
            if not path:
                return
        try:
            engine.save_model(state.model, path)
        except (OSError, engine.GR2RError) as exc:
            state.reject(f"Could not save the model: {exc}")
            return
        state.show_message(f"Saved the model to {path}.")
        show_info(f"GR2R model saved to {path}")

    def load_model(self, path: str | None = None) -> None:
        """Load a model from ``path`` (asked for in a dialog when None) as the current model."""
        state = self.state
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load GR2R model", "",
                                                  f"{MODEL_FILES};;All files (*)")
            if not path:
                return
        try:
            model = engine.load_model(path)
        except (OSError, engine.GR2RError) as exc:
            state.reject(f"Could not load {path}: {exc}")
            return
        state.set_model(model)
        state.model_loaded.emit(model)
        layer = state.chosen_layer()
        note = ""
        if layer is not None:
            try:
                check_model_fits(model, check_axes(layer, state.axes))
            except LayerChoiceError as exc:
                note = f" It does not fit the selected layer: {exc}"
        state.show_message(f"Loaded {path}.{note}", error=bool(note))
