"""The training panel: Train and Stop, the progress and losses while training, the live preview.

Training runs :class:`~._workers.TrainingJob` in a napari thread worker; its engine events come
back on the main thread and are drawn here: the progress bar, the loss plot, the collapse
warning and, every few steps, a preview of the slice in view.
"""

from __future__ import annotations

import math
from typing import Any

from napari.qt.threading import create_worker
from qtpy.QtWidgets import QCheckBox, QGridLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from napari_gr2r import engine

from ._layers import (
    LayerChoiceError,
    as_display_dtype,
    check_axes,
    check_model_fits,
    current_slice,
    layer_array,
    put_layer,
)
from ._loss_plot import LossPlot
from ._state import WARN_STYLE, Panel, WidgetState
from ._workers import PreviewResult, TrainingJob

_NOT_PLOTTED = ("step", "lr", "elapsed_s", "residual_energy")
"""Columns of a model's history that are not losses."""


def format_duration(seconds: float) -> str:
    """``"1:05:09"`` or ``"3:07"``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class TrainingPanel(Panel):
    """'Continue training', Train and Stop; and a monitor: the collapse warning and the losses.

    The panel itself holds the controls. :attr:`monitor` (the collapse warning over the loss
    plot) is a separate widget, which the GR2R widget places under the job's progress bar.
    Stop asks every running job to stop, denoising included.
    """

    def __init__(self, state: WidgetState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        self._train_layer: Any = None
        self._train_axes = ""
        self._train_config: engine.TrainConfig | None = None
        self._net_dims = 2
        self._last_preview_step = 0
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.resume = QCheckBox("Continue training the current model")
        self.resume.setToolTip("Train resumes from the current model's weights and optimiser.")
        layout.addWidget(self.resume)
        buttons = QGridLayout()
        self.train_button = QPushButton("Train")
        self.train_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("End training after the current step and keep the best weights.")
        self.stop_button.clicked.connect(state.stop_jobs)
        buttons.addWidget(self.train_button, 0, 0)
        buttons.addWidget(self.stop_button, 0, 1)
        layout.addLayout(buttons)

        self.monitor = QWidget()
        monitor = QVBoxLayout(self.monitor)
        monitor.setContentsMargins(0, 0, 0, 0)
        self.collapse_warning = QLabel()
        self.collapse_warning.setWordWrap(True)
        self.collapse_warning.setStyleSheet(WARN_STYLE)
        self.collapse_warning.hide()
        monitor.addWidget(self.collapse_warning)
        self.loss_plot = LossPlot()
        monitor.addWidget(self.loss_plot, 1)

        for signal in (state.model_changed, state.choice_changed, state.busy_changed):
            signal.connect(self._update_buttons)
        state.model_loaded.connect(self._on_model_loaded)
        self._update_buttons()

    def _update_buttons(self) -> None:
        state = self.state
        self.train_button.setEnabled(not state.busy and state.axes_ok)
        self.stop_button.setEnabled(state.busy)
        self.resume.setEnabled(state.model is not None and not state.busy)
        if state.model is None:
            self.resume.setChecked(False)

    def _on_model_loaded(self, model: engine.GR2RModel) -> None:
        """Draw the loaded model's losses, and offer to continue training it."""
        self.loss_plot.clear()
        for row in model.history:
            values = {k: v for k, v in row.items() if k not in _NOT_PLOTTED}
            self.loss_plot.add_point(int(row["step"]), values)
        self.resume.setChecked(True)

    # -------------------------------------------------------------------------------- training
    def start(self) -> None:
        """Train on the chosen layer with the settings, a new model or the current one."""
        state = self.state
        if state.busy:
            return
        layer = state.chosen_layer()
        layers = state.training_layers() or [layer]
        axes = state.axes
        try:
            infos = [check_axes(each, axes, training=True) for each in layers]
            config = state.settings.config()
            model = state.model if (self.resume.isChecked() and state.model is not None) else None
            if model is not None:
                for info in infos:
                    check_model_fits(model, info)
                if (config.width, config.depth) != (model.config.width, model.config.depth):
                    raise LayerChoiceError(
                        f"The current model has width {model.config.width} and depth "
                        f"{model.config.depth}; to continue training it keep them, or untick "
                        "'Continue training' to train a new model."
                    )
        except (LayerChoiceError, engine.GR2RError) as exc:
            state.reject(str(exc))
            return
        if model is None:
            self.loss_plot.clear()
        self.collapse_warning.hide()
        self._train_layer, self._train_axes, self._train_config = layer, axes, config
        self._last_preview_step = model.step if model is not None else 0
        data = layer_array(layer) if len(layers) == 1 else [layer_array(each) for each in layers]
        job = TrainingJob()
        worker = create_worker(job.run, data, axes, config, model, state.settings.device_id(),
                               _start_thread=False)
        worker.yielded.connect(self.on_event)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(state.report_worker_error)
        worker.finished.connect(self._on_finished)
        state.progress_busy("preparing…")
        names = ", ".join(repr(each.name) for each in layers)
        state.show_message(f"Training on {names} ({axes})…")
        state.model_label.setText(
            f"Continuing the current model from step {model.step}…" if model is not None
            else "Training a new model…"
        )
        state.set_training(job, worker)
        worker.start()

    def on_event(self, event: Any) -> None:
        """Draw one event of the training worker (on the main thread)."""
        progress = self.state.progress
        if isinstance(event, engine.TrainingStarted):
            self._net_dims = event.net_dims
            progress.setRange(0, max(event.total_steps, 1))
            progress.setValue(event.step)
            self.state.show_message(
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
            progress.setRange(0, max(event.total_steps, 1))
            progress.setValue(event.step)
            progress.setFormat(
                f"step {event.step}/{event.total_steps} · {event.patches_per_s:.0f} patches/s · "
                f"{format_duration(event.eta_s)} left"
            )
            self._maybe_request_preview(event.step)
        elif isinstance(event, engine.CollapseDetected):
            # napari's worker also relays the engine's CollapseWarning to the notifications
            self.collapse_warning.setText(f"⚠ {event.message}")
            self.collapse_warning.show()
        elif isinstance(event, engine.TrainingFinished):
            progress.setValue(event.step)
            how = "Stopped" if event.stopped else "Finished"
            best = f"; best weights from step {event.best_step} kept"
            progress.setFormat(f"{how} at step {event.step}")
            self.state.show_message(f"{how} at step {event.step}{best}. Denoise or save the model.")
        elif isinstance(event, PreviewResult) and self._train_layer in self.viewer.layers:
            put_layer(self.viewer, as_display_dtype(event.data, self._train_layer),
                      event.layer_kwargs)

    def _maybe_request_preview(self, step: int) -> None:
        every = self.state.settings.preview_interval()
        layer, job = self._train_layer, self.state.train_job
        if not every or job is None or layer is None or layer not in self.viewer.layers:
            return
        if step - self._last_preview_step < every:
            return
        self._last_preview_step = step
        depth_z = self._train_config.patch_size_z if self._train_config else 16
        request = current_slice(self.viewer, layer, self._train_axes, self._net_dims, depth_z)
        job.request_preview(request, step)

    def _on_returned(self, result: tuple[Any, Any]) -> None:
        model, _ = result
        if model is not None:
            self.state.set_model(model)
            self.resume.setChecked(True)

    def _on_finished(self) -> None:
        if self.state.progress.maximum() == 0:
            self.state.progress_idle()
        self.state.set_training(None, None)
