"""The GR2R Denoise dock widget: train on an image layer, watch the losses, denoise.

The widget is thin: it turns layers into arrays and axes, events into pixels, and calls
:mod:`napari_gr2r.engine` in napari thread workers. It never touches tensors.
"""

from __future__ import annotations

import contextlib
import math
from functools import partial
from typing import TYPE_CHECKING, Any

from napari.qt.threading import create_worker
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from napari_gr2r import engine

from ._layers import (
    LayerChoiceError,
    as_display_dtype,
    check_axes,
    check_model_fits,
    current_slice,
    denoised_name,
    guess_layer_axes,
    is_image_layer,
    is_large,
    layer_array,
    output_kwargs,
    put_layer,
)
from ._loss_plot import LossPlot
from ._workers import (
    PreviewResult,
    ProgressRelay,
    Refused,
    TrainingJob,
    denoise_array,
    denoise_into_zarr,
)

if TYPE_CHECKING:
    import napari

_ERROR_STYLE = "color: #ff7070;"
_OK_STYLE = "color: #8fd18f;"
_WARN_STYLE = "color: #ffcc55; font-weight: bold;"


def format_duration(seconds: float) -> str:
    """``"1:05:09"`` or ``"3:07"``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class GR2RWidget(QWidget):
    """Dock widget: layer, axes, preset and settings; Train, Stop, Save, Load, Denoise.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose image layers are offered.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self._model: engine.GR2RModel | None = None
        self._layers: list[Any] = []
        self._job: TrainingJob | None = None
        self._worker: Any = None
        self._denoise_worker: Any = None
        self._relay: ProgressRelay | None = None
        self._train_layer: Any = None
        self._train_axes = ""
        self._train_config: engine.TrainConfig | None = None
        self._net_dims = 2
        self._last_preview_step = 0
        self._closed = False
        self._zarr_out: str | None = None
        """Output store for large layers; None asks with a save dialog at each Denoise."""
        self._zarr_layer: Any = None
        self._build()
        self._connect_viewer()
        self._refresh_layers()
        self._on_preset_changed(self.preset.currentText())
        self._update_buttons()

    # ==================================================================== construction
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.layer_combo = QComboBox()
        self.layer_combo.setToolTip("Image layer to train on and to denoise (image layers only).")
        self.layer_combo.currentIndexChanged.connect(self._on_layer_changed)
        form.addRow("Image", self.layer_combo)
        self.axes_edit = QLineEdit()
        self.axes_edit.setToolTip(
            "One letter per dimension: T or S (samples, e.g. time), C (channels), Z, Y, X. "
            "Examples: YX, ZYX, TYX, YXC (RGB), CZYX."
        )
        self.axes_edit.textChanged.connect(self._on_axes_changed)
        self.axes_message = QLabel()
        self.axes_message.setWordWrap(True)
        axes_row = QHBoxLayout()
        axes_row.addWidget(self.axes_edit, 1)
        form.addRow("Axes", axes_row)
        form.addRow("", self.axes_message)
        self.preset = QComboBox()
        self.preset.addItems(list(engine.PRESETS))
        self.preset.setToolTip("fast: a laptop CPU in minutes; balanced: a workstation; quality: a GPU.")
        self.preset.currentTextChanged.connect(self._on_preset_changed)
        form.addRow("Preset", self.preset)
        self.device = QComboBox()
        self.device.addItem("auto", "auto")
        for device_id, label in engine.available_devices():
            self.device.addItem(label, device_id)
        form.addRow("Device", self.device)
        self.preview_every = QSpinBox()
        self.preview_every.setRange(0, 1_000_000)
        self.preview_every.setSingleStep(10)
        self.preview_every.setValue(50)
        self.preview_every.setSpecialValueText("off")
        self.preview_every.setSuffix(" steps")
        self.preview_every.setToolTip("Denoise the slice in view into a preview layer this often.")
        form.addRow("Preview every", self.preview_every)
        layout.addLayout(form)

        self.advanced = QCollapsible("Advanced")
        self.advanced.addWidget(self._build_advanced())
        layout.addWidget(self.advanced)

        self.resume = QCheckBox("Continue training the current model")
        self.resume.setToolTip("Train resumes from the current model's weights and optimiser.")
        layout.addWidget(self.resume)

        buttons = QGridLayout()
        self.train_button = QPushButton("Train")
        self.train_button.clicked.connect(self._on_train)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("End training after the current step and keep the best weights.")
        self.stop_button.clicked.connect(self._on_stop)
        self.save_button = QPushButton("Save model…")
        self.save_button.clicked.connect(self._on_save_clicked)
        self.load_button = QPushButton("Load model…")
        self.load_button.clicked.connect(self._on_load_clicked)
        self.denoise_button = QPushButton("Denoise")
        self.denoise_button.setToolTip("Denoise the whole image into a new layer '<image> [denoised]'.")
        self.denoise_button.clicked.connect(self._on_denoise)
        buttons.addWidget(self.train_button, 0, 0)
        buttons.addWidget(self.stop_button, 0, 1)
        buttons.addWidget(self.save_button, 1, 0)
        buttons.addWidget(self.load_button, 1, 1)
        buttons.addWidget(self.denoise_button, 2, 0, 1, 2)
        layout.addLayout(buttons)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        layout.addWidget(self.progress)
        self.collapse_warning = QLabel()
        self.collapse_warning.setWordWrap(True)
        self.collapse_warning.setStyleSheet(_WARN_STYLE)
        self.collapse_warning.hide()
        layout.addWidget(self.collapse_warning)
        self.loss_plot = LossPlot()
        layout.addWidget(self.loss_plot, 1)
        self.model_label = QLabel("No model yet: train one or load one.")
        self.model_label.setWordWrap(True)
        layout.addWidget(self.model_label)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.message)

    def _build_advanced(self) -> QWidget:
        box = QWidget()
        form = QFormLayout(box)
        self.method = QComboBox()
        for method in engine.METHODS:
            if method != "n2c":  # supervised: needs a clean target, which the widget has not
                self.method.addItem(method)
        self.method.setToolTip(
            "gr2r: stable GR2R (the generated noise is pinned to the estimated noise level). "
            "gr2r-paper: the published objective, which can collapse onto the noisy input. "
            "r2r: recorrupted-to-recorrupted with a known Gaussian noise level (set Noise σ)."
        )
        form.addRow("Method", self.method)
        self.steps = _int_spin(1, 10_000_000, 100)
        form.addRow("Steps", self.steps)
        self.batch = _int_spin(1, 1024, 1)
        form.addRow("Batch size", self.batch)
        self.patch = _int_spin(8, 1024, 8)
        form.addRow("Patch size (YX)", self.patch)
        self.patch_z = _int_spin(4, 256, 4)
        form.addRow("Patch size (Z)", self.patch_z)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(6)
        self.lr.setRange(1e-6, 0.5)
        self.lr.setSingleStep(1e-4)
        self.lr.setValue(3e-4)
        form.addRow("Learning rate", self.lr)
        self.gamma = _weight_spin()
        self.gamma.setToolTip("Weight γ of the pseudo-supervised term ('default': the method's).")
        form.addRow("γ", self.gamma)
        self.lambda_g = _weight_spin()
        self.lambda_g.setToolTip("Weight λ_g of the regular term ('default': the method's).")
        form.addRow("λ_g", self.lambda_g)
        self.width = _int_spin(2, 256, 4)
        form.addRow("Network width", self.width)
        self.depth = _int_spin(1, 6, 1)
        form.addRow("Network depth", self.depth)
        self.noise_sigma = QDoubleSpinBox()
        self.noise_sigma.setDecimals(3)
        self.noise_sigma.setRange(0.0, 1e9)
        self.noise_sigma.setSpecialValueText("not set")
        self.noise_sigma.setToolTip(
            "Gaussian noise standard deviation in the image's intensity units; needed by r2r "
            "(the training message shows the engine's estimate)."
        )
        form.addRow("Noise σ (r2r)", self.noise_sigma)
        self.net_dims = QComboBox()
        self.net_dims.addItems(["auto", "2d", "3d"])
        self.net_dims.setToolTip("auto: a 3D network when the stack is deep enough, else 2D.")
        form.addRow("Network", self.net_dims)
        self.val_fraction = QDoubleSpinBox()
        self.val_fraction.setRange(0.0, 0.45)
        self.val_fraction.setSingleStep(0.05)
        self.val_fraction.setValue(0.1)
        form.addRow("Validation fraction", self.val_fraction)
        self.seed = _int_spin(-1, 2**31 - 1, 1)
        self.seed.setSpecialValueText("random")
        self.seed.setValue(0)
        form.addRow("Seed", self.seed)
        return box

    def _connect_viewer(self) -> None:
        layers = self.viewer.layers
        layers.events.inserted.connect(self._on_layers_inserted)
        layers.events.removed.connect(self._on_layers_changed)
        layers.events.moved.connect(self._on_layers_changed)
        for layer in layers:
            layer.events.name.connect(self._on_layers_changed)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._teardown)

    def _disconnect_viewer(self) -> None:
        layers = self.viewer.layers
        for emitter, callback in (
            (layers.events.inserted, self._on_layers_inserted),
            (layers.events.removed, self._on_layers_changed),
            (layers.events.moved, self._on_layers_changed),
        ):
            emitter.disconnect(callback)
        for layer in layers:
            layer.events.name.disconnect(self._on_layers_changed)

    # ==================================================================== layer picker
    def _on_layers_inserted(self, event: Any) -> None:
        event.value.events.name.connect(self._on_layers_changed)
        self._refresh_layers()

    def _on_layers_changed(self, event: Any = None) -> None:
        self._refresh_layers()

    def _refresh_layers(self) -> None:
        """List the viewer's image layers, keeping the current choice when it is still there."""
        current = self._selected_layer()
        if current is None:
            active = self.viewer.layers.selection.active
            current = active if active is not None and is_image_layer(active) else None
        self._layers = [layer for layer in self.viewer.layers if is_image_layer(layer)]
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        for layer in self._layers:
            self.layer_combo.addItem(layer.name)
        index = next((i for i, layer in enumerate(self._layers) if layer is current), 0)
        if self._layers:
            self.layer_combo.setCurrentIndex(index)
        self.layer_combo.blockSignals(False)
        if self._layers and self._layers[index] is not getattr(self, "_axes_layer", None):
            self._on_layer_changed(index)
        elif not self._layers:
            self._axes_layer = None
            self.axes_edit.clear()
        self._update_buttons()

    def _selected_layer(self) -> Any:
        index = self.layer_combo.currentIndex()
        if 0 <= index < len(self._layers) and self._layers[index] in self.viewer.layers:
            return self._layers[index]
        return None

    def _on_layer_changed(self, index: int) -> None:
        layer = self._selected_layer()
        self._axes_layer = layer
        if layer is not None:
            self.axes_edit.setText(guess_layer_axes(layer))
        self._on_axes_changed()

    def _on_axes_changed(self, text: str | None = None) -> None:
        layer = self._selected_layer()
        if layer is None:
            self._set_axes_message("No image layer: open or select an image.", ok=False)
        else:
            try:
                info = check_axes(layer, self.axes_edit.text(), training=True)
            except LayerChoiceError as exc:
                self._set_axes_message(str(exc), ok=False)
            else:
                sizes = " × ".join(f"{a}{n}" for a, n in zip(info.axes, info.shape))
                self._set_axes_message(f"✓ {sizes}", ok=True)
        self._update_buttons()

    def _set_axes_message(self, text: str, ok: bool) -> None:
        self._axes_ok = ok
        self.axes_message.setText(text)
        self.axes_message.setStyleSheet(_OK_STYLE if ok else _ERROR_STYLE)

    # ==================================================================== settings
    def _on_preset_changed(self, preset: str) -> None:
        cfg = engine.TrainConfig.from_preset(preset)
        self.steps.setValue(cfg.steps)
        self.batch.setValue(cfg.batch_size)
        self.patch.setValue(cfg.patch_size)
        self.patch_z.setValue(cfg.patch_size_z)
        self.lr.setValue(cfg.lr)
        self.width.setValue(cfg.width)
        self.depth.setValue(cfg.depth)

    def _config(self) -> engine.TrainConfig:
        """The training configuration the widgets describe (raises ConfigError)."""
        gamma = self.gamma.value()
        lambda_g = self.lambda_g.value()
        return engine.TrainConfig.from_preset(
            self.preset.currentText(),
            method=self.method.currentText(),
            steps=self.steps.value(),
            batch_size=self.batch.value(),
            patch_size=self.patch.value(),
            patch_size_z=self.patch_z.value(),
            lr=self.lr.value(),
            gamma=None if gamma < 0 else gamma,
            lambda_g=None if lambda_g < 0 else lambda_g,
            width=self.width.value(),
            depth=self.depth.value(),
            net_dims=self.net_dims.currentText(),
            val_fraction=self.val_fraction.value(),
            seed=None if self.seed.value() < 0 else self.seed.value(),
            noise_sigma=self.noise_sigma.value() or None,
        )

    def _device(self) -> str:
        return str(self.device.currentData())

    # ==================================================================== state
    @property
    def training(self) -> bool:
        return self._worker is not None

    @property
    def denoising(self) -> bool:
        return self._denoise_worker is not None

    def _update_buttons(self) -> None:
        busy = self.training or self.denoising
        axes_ok = getattr(self, "_axes_ok", False)
        self.train_button.setEnabled(not busy and axes_ok)
        self.stop_button.setEnabled(self.training or self.denoising)
        self.save_button.setEnabled(self._model is not None and not self.training)
        self.load_button.setEnabled(not busy)
        self.denoise_button.setEnabled(self._model is not None and not busy and
                                       self._selected_layer() is not None)
        self.resume.setEnabled(self._model is not None and not busy)
        if self._model is None:
            self.resume.setChecked(False)

    def _show_message(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(_ERROR_STYLE if error else "")

    def _reject(self, text: str) -> None:
        """A bad choice: say why in the widget and in napari's notifications."""
        self._show_message(text, error=True)
        show_warning(text)

    def _set_model(self, model: engine.GR2RModel | None) -> None:
        self._model = model
        if model is None:
            self.model_label.setText("No model yet: train one or load one.")
        else:
            cfg = model.config
            self.model_label.setText(
                f"Model: {cfg.method}, {model.dims}D network (width {cfg.width}, depth {cfg.depth}), "
                f"axes {model.axes}, {model.channels} channel(s), {model.step} steps "
                f"(best at step {model.best_step})."
            )
        self._update_buttons()

    # ==================================================================== training
    def _on_train(self) -> None:
        if self.training or self.denoising:
            return
        layer = self._selected_layer()
        axes = self.axes_edit.text().strip().upper()
        try:
            info = check_axes(layer, axes, training=True)
            config = self._config()
            model = self._model if (self.resume.isChecked() and self._model is not None) else None
            if model is not None:
                check_model_fits(model, info)
                if (config.width, config.depth) != (model.config.width, model.config.depth):
                    raise LayerChoiceError(
                        f"The current model has width {model.config.width} and depth "
                        f"{model.config.depth}; to continue training it keep them, or untick "
                        "'Continue training' to train a new model."
                    )
        except (LayerChoiceError, engine.GR2RError) as exc:
            self._reject(str(exc))
            return
        if model is None:
            self.loss_plot.clear()
        self.collapse_warning.hide()
        self._train_layer, self._train_axes, self._train_config = layer, axes, config
        self._last_preview_step = model.step if model is not None else 0
        data = layer_array(layer)
        job = TrainingJob()
        worker = create_worker(job.run, data, axes, config, model, self._device(),
                               _start_thread=False)
        worker.yielded.connect(self._on_train_event)
        worker.returned.connect(self._on_train_returned)
        worker.errored.connect(self._on_worker_error)
        worker.finished.connect(self._on_train_finished)
        self._job, self._worker = job, worker
        self.progress.setRange(0, 0)
        self.progress.setFormat("preparing…")
        self._show_message(f"Training on {layer.name!r} ({axes})…")
        self.model_label.setText(
            f"Continuing the current model from step {model.step}…" if model is not None
            else "Training a new model…"
        )
        self._update_buttons()
        worker.start()

    def _on_stop(self) -> None:
        if self._job is not None:
            self._job.request_stop()
            self._show_message("Stopping after the current step; the best weights are kept…")
        if self._denoise_worker is not None:
            self._denoise_stop = True
            self._show_message("Stopping the denoising…")

    def _on_train_event(self, event: Any) -> None:
        if isinstance(event, engine.TrainingStarted):
            self._net_dims = event.net_dims
            self.progress.setRange(0, max(event.total_steps, 1))
            self.progress.setValue(event.step)
            self._show_message(
                f"Training a {event.net_dims}D network ({event.n_parameters:,} parameters) on "
                f"{event.device}; estimated noise SD {event.noise_sd:.3g}"
                + (f", correlated between neighbouring pixels ({event.noise_correlation:.2f})."
                   if event.noise_correlation else ".")
            )
        elif isinstance(event, engine.TrainingProgress):
            values = {"loss": event.loss, **event.terms}
            if event.validated and event.val_loss is not None:
                values["val_loss"] = event.val_loss
            self.loss_plot.add_point(event.step, values)
            self.progress.setRange(0, max(event.total_steps, 1))
            self.progress.setValue(event.step)
            self.progress.setFormat(
                f"step {event.step}/{event.total_steps} · {event.patches_per_s:.0f} patches/s · "
                f"{format_duration(event.eta_s)} left"
            )
            self._maybe_request_preview(event.step)
        elif isinstance(event, engine.CollapseDetected):
            # napari's worker also relays the engine's CollapseWarning to the notifications
            self.collapse_warning.setText(f"⚠ {event.message}")
            self.collapse_warning.show()
        elif isinstance(event, engine.TrainingFinished):
            self.progress.setValue(event.step)
            how = "Stopped" if event.stopped else "Finished"
            best = f"; best weights from step {event.best_step} kept"
            self.progress.setFormat(f"{how} at step {event.step}")
            self._show_message(f"{how} at step {event.step}{best}. Denoise or save the model.")
        elif isinstance(event, PreviewResult) and self._train_layer in self.viewer.layers:
            put_layer(self.viewer, as_display_dtype(event.data, self._train_layer),
                      event.layer_kwargs)

    def _maybe_request_preview(self, step: int) -> None:
        every = self.preview_every.value()
        layer = self._train_layer
        if not every or self._job is None or layer is None or layer not in self.viewer.layers:
            return
        if step - self._last_preview_step < every:
            return
        self._last_preview_step = step
        depth_z = self._train_config.patch_size_z if self._train_config else 16
        request = current_slice(self.viewer, layer, self._train_axes, self._net_dims, depth_z)
        self._job.request_preview(request, step)

    def _on_train_returned(self, result: tuple[Any, Any]) -> None:
        model, _ = result
        if model is not None:
            self._set_model(model)
            self.resume.setChecked(True)

    def _on_worker_error(self, exc: BaseException) -> None:
        self._show_message(f"{type(exc).__name__}: {exc}", error=True)

    def _on_train_finished(self) -> None:
        self._worker = None
        self._job = None
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
            self.progress.setFormat("idle")
        self._update_buttons()

    # ==================================================================== denoising
    def _on_denoise(self) -> None:
        if self.training or self.denoising:
            return
        layer = self._selected_layer()
        axes = self.axes_edit.text().strip().upper()
        try:
            if self._model is None:
                raise LayerChoiceError("No model: train one or load one first.")
            info = check_axes(layer, axes)
            check_model_fits(self._model, info)
        except LayerChoiceError as exc:
            self._reject(str(exc))
            return
        data = layer_array(layer)
        self._denoise_stop = False
        if is_large(layer):
            self._denoise_lazily(layer, data, axes)
            return
        relay = ProgressRelay()
        relay.progressed.connect(self._on_denoise_progress)
        worker = create_worker(denoise_array, self._model, data, axes, self._device(),
                               progress=relay, should_stop=self._denoise_stop_requested,
                               _start_thread=False)
        worker.returned.connect(partial(self._on_denoised, layer))
        worker.errored.connect(self._on_worker_error)
        worker.finished.connect(self._on_denoise_finished)
        self._relay, self._denoise_worker = relay, worker
        self.progress.setRange(0, 0)
        self.progress.setFormat("denoising…")
        self._show_message(f"Denoising {layer.name!r}…")
        self._update_buttons()
        worker.start()

    def _ask_zarr_out(self, layer: Any) -> str | None:
        """The zarr store for a large layer's result: preset, or chosen in a save dialog."""
        if self._zarr_out is not None:
            return self._zarr_out
        path, _ = QFileDialog.getSaveFileName(
            self, "Denoise into a zarr store", f"{layer.name}-denoised.zarr",
            "Zarr store (*.zarr)")
        if not path:
            return None
        return path if path.endswith(".zarr") else f"{path}.zarr"

    def _denoise_lazily(self, layer: Any, data: Any, axes: str) -> None:
        """Denoise a large layer block by block into a zarr store, shown while it is written."""
        out = self._ask_zarr_out(layer)
        if out is None:
            return
        worker = create_worker(denoise_into_zarr, self._model, data, axes, out, self._device(),
                               should_stop=self._denoise_stop_requested, _start_thread=False)
        worker.yielded.connect(partial(self._on_zarr_progress, layer, out))
        worker.returned.connect(partial(self._on_zarr_returned, layer, out))
        worker.errored.connect(self._on_worker_error)
        worker.finished.connect(self._on_denoise_finished)
        self._denoise_worker, self._zarr_layer = worker, None
        self.progress.setRange(0, 0)
        self.progress.setFormat("denoising…")
        self._show_message(f"Denoising {layer.name!r} block by block into {out}…")
        self._update_buttons()
        worker.start()

    def _on_zarr_progress(self, layer: Any, out: str, step: engine.ChunkProgress) -> None:
        self._on_denoise_progress(step.done, step.total, unit="block")
        if self._zarr_layer is None:
            # the store exists from the first step on: show it now, loading chunks as browsed
            import dask.array as da
            import zarr

            name = denoised_name(layer)
            if name in self.viewer.layers:
                del self.viewer.layers[name]
            kwargs = output_kwargs(layer, name, cache=False, metadata={
                "gr2r": {"source": layer.name, "model": repr(self._model), "store": out}})
            lazy = da.from_zarr(zarr.open_array(out, mode="r"))
            self._zarr_layer = put_layer(self.viewer, lazy, kwargs)
        elif step.written and self._zarr_layer in self.viewer.layers:  # not if removed
            self._zarr_layer.refresh()

    def _on_zarr_returned(self, layer: Any, out: str, result: Any) -> None:
        if self._zarr_layer is not None and self._zarr_layer in self.viewer.layers:
            self._zarr_layer.refresh()
        if isinstance(result, Refused):
            self.progress.setRange(0, 1)
            self.progress.setFormat("idle")
            self._reject(result.message)
            return
        if result is None:
            self.progress.setFormat("stopped")
            self._show_message(f"Stopped; the blocks written so far are kept in {out}. "
                               "Denoise into the same store again to resume.")
            return
        self.progress.setFormat("done")
        self._show_message(f"Denoised {layer.name!r} into {denoised_name(layer)!r}, "
                           f"stored in {out}.")

    def _denoise_stop_requested(self) -> bool:
        return self._denoise_stop

    def _on_denoise_progress(self, done: int, total: int, unit: str = "tile") -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"denoising: {unit} {done}/{total}")

    def _on_denoised(self, layer: Any, result: Any) -> None:
        name = denoised_name(layer)
        kwargs = output_kwargs(layer, name, metadata={"gr2r": {"source": layer.name,
                                                               "model": repr(self._model)}})
        put_layer(self.viewer, as_display_dtype(result, layer), kwargs)
        self._show_message(f"Denoised {layer.name!r} into {name!r}.")
        self.progress.setFormat("done")

    def _on_denoise_finished(self) -> None:
        self._denoise_worker = None
        self._zarr_layer = None
        self._relay = None
        self._update_buttons()

    # ==================================================================== model files
    def _on_save_clicked(self) -> None:
        self._save_model()

    def _on_load_clicked(self) -> None:
        self._load_model()

    def _save_model(self, path: str | None = None) -> None:
        if self._model is None:
            self._reject("No model to save: train one or load one first.")
            return
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save GR2R model", "model.gr2r.pt",
                                                  "GR2R model (*.gr2r.pt *.pt)")
            if not path:
                return
        try:
            engine.save_model(self._model, path)
        except (OSError, engine.GR2RError) as exc:
            self._reject(f"Could not save the model: {exc}")
            return
        self._show_message(f"Saved the model to {path}.")
        show_info(f"GR2R model saved to {path}")

    def _load_model(self, path: str | None = None) -> None:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load GR2R model", "",
                                                  "GR2R model (*.gr2r.pt *.pt);;All files (*)")
            if not path:
                return
        try:
            model = engine.load_model(path)
        except (OSError, engine.GR2RError) as exc:
            self._reject(f"Could not load {path}: {exc}")
            return
        self._set_model(model)
        cfg = model.config
        self.width.setValue(cfg.width)
        self.depth.setValue(cfg.depth)
        self.loss_plot.clear()
        for row in model.history:
            values = {k: v for k, v in row.items() if k not in ("step", "lr", "elapsed_s",
                                                                 "residual_energy")}
            self.loss_plot.add_point(int(row["step"]), values)
        self.resume.setChecked(True)
        layer = self._selected_layer()
        note = ""
        if layer is not None:
            try:
                check_model_fits(model, check_axes(layer, self.axes_edit.text()))
            except LayerChoiceError as exc:
                note = f" It does not fit the selected layer: {exc}"
        self._show_message(f"Loaded {path}.{note}", error=bool(note))

    # ==================================================================== closing
    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is None:
                self._teardown()
            else:
                self._watch_window()
        return super().event(event)

    def showEvent(self, event: Any) -> None:
        self._watch_window()
        super().showEvent(event)

    def _watch_window(self) -> None:
        """Filter the events of every parent (dock, main window) to hear the window close.

        Installing a filter twice has no effect, and no parent is stored, so nothing here keeps
        the viewer alive.
        """
        parent = self.parent()
        while parent is not None:
            parent.installEventFilter(self)
            parent = parent.parent()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.ParentChange:
            self._watch_window()
        elif kind == QEvent.Type.Close and isinstance(obj, QMainWindow) and obj is self.window():
            # the viewer's window (hiding the dock, even a floating one, is not closing)
            self._teardown()
        return False

    def closeEvent(self, event: Any) -> None:
        self._teardown()
        super().closeEvent(event)

    def _teardown(self) -> None:
        """Stop training and denoising, and let go of the viewer (closing widget or viewer)."""
        if self._closed:
            return
        self._closed = True
        for worker in (self._worker, self._denoise_worker):
            if worker is not None:
                for signal in (worker.yielded if hasattr(worker, "yielded") else None,
                               worker.returned, worker.errored, worker.finished):
                    if signal is not None:
                        with contextlib.suppress(TypeError, RuntimeError):
                            signal.disconnect()
        if self._job is not None:
            self._job.request_stop()
        self._denoise_stop = True
        for worker in (self._worker, self._denoise_worker):
            if worker is not None:
                worker.quit()
        self._worker = self._denoise_worker = self._job = None
        with contextlib.suppress(AttributeError, RuntimeError, ValueError):
            self._disconnect_viewer()
        app = QApplication.instance()
        if app is not None:
            with contextlib.suppress(TypeError, RuntimeError):
                app.aboutToQuit.disconnect(self._teardown)


def _int_spin(low: int, high: int, step: int) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setSingleStep(step)
    return spin


def _weight_spin() -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setDecimals(3)
    spin.setRange(-1.0, 100.0)
    spin.setSingleStep(0.5)
    spin.setSpecialValueText("default")
    spin.setValue(-1.0)
    return spin

