"""The training panel: Train and Stop, the progress and losses while training, the live preview,
the result layer, and the autosave.

Training runs :class:`~._workers.TrainingJob` in a napari thread worker; its engine events come
back on the main thread and are drawn here: the progress bar, the loss plot, the collapse
warning and, every few steps, a preview of the slice in view. When training finishes or is
stopped, the image is denoised with the kept best weights into a result layer, which replaces
the preview (unless "Denoise into a layer when training ends" is off). While it trains, the run
is autosaved to the user's cache folder (:mod:`._autosave`); an autosave left by a crash is
offered back when the panel opens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_gr2r import engine
from napari_gr2r.engine.errors import format_duration

from . import _autosave
from ._jobs import ProgressRelay
from ._layers import (
    LayerChoiceError,
    as_display_dtype,
    check_axes,
    check_model_fits,
    denoised_name,
    is_large,
    layer_array,
    put_layer,
)
from ._loss_plot import LossPlot
from ._preview import current_slice
from ._results import add_result_layer
from ._state import WARN_STYLE, Panel, WidgetState
from ._workers import PreviewResult, TrainingJob, TrainingPhase

_NOT_PLOTTED = ("step", "lr", "elapsed_s", "residual_energy", "estimated_psnr")
"""Columns of a model's history that are not losses."""


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
        self._finished_text = ""
        self._preview_layer: Any = None
        self._fresh = False
        self._autosave: Path | None = None
        self._job: TrainingJob | None = None
        self._relay: ProgressRelay | None = None
        self._noise_from = ""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._build_offer())
        self.resume = QCheckBox("Continue training the current model")
        self.resume.setToolTip("Train resumes from the current model's weights and optimiser.")
        layout.addWidget(self.resume)
        self.result_layer = QCheckBox("Denoise into a layer when training ends")
        self.result_layer.setChecked(True)
        self.result_layer.setToolTip(
            "When training finishes or is stopped, denoise the image with the best weights "
            "into '<image> [denoised]' (replacing the preview). Off: only train the model.")
        layout.addWidget(self.result_layer)
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
        state.quality_changed.connect(self._on_quality)
        self._update_buttons()
        self._offer_next_leftover()

    # -------------------------------------------------------------------------------- autosave
    def _build_offer(self) -> QWidget:
        """The offer of an autosave left by a crash: what it is, Load and Discard."""
        self.autosave_offer = QWidget()
        box = QVBoxLayout(self.autosave_offer)
        box.setContentsMargins(0, 0, 0, 0)
        self.autosave_label = QLabel()
        self.autosave_label.setWordWrap(True)
        self.autosave_label.setStyleSheet(WARN_STYLE)
        box.addWidget(self.autosave_label)
        row = QHBoxLayout()
        self.autosave_load = QPushButton("Load autosaved model")
        self.autosave_load.clicked.connect(self._load_leftover)
        self.autosave_discard = QPushButton("Discard")
        self.autosave_discard.clicked.connect(self._discard_leftover)
        row.addWidget(self.autosave_load)
        row.addWidget(self.autosave_discard)
        box.addLayout(row)
        self.autosave_offer.hide()
        self._leftover: _autosave.Leftover | None = None
        return self.autosave_offer

    def _offer_next_leftover(self) -> None:
        found = _autosave.leftovers()
        self._leftover = found[0] if found else None
        if self._leftover is None:
            self.autosave_offer.hide()
            return
        more = f" ({len(found) - 1} older autosave(s) too.)" if len(found) > 1 else ""
        self.autosave_label.setText(f"⚠ {self._leftover.describe()}{more}")
        self.autosave_offer.show()

    def _load_leftover(self) -> None:
        leftover = self._leftover
        if leftover is None or self.state.busy:
            return
        try:
            model = engine.load_model(leftover.path)
        except engine.GR2RError as exc:
            self.state.reject(f"Could not load the autosave: {exc}")
        else:
            self.state.set_model(model)
            self.state.model_loaded.emit(model)
            self.state.show_message(
                f"Loaded the autosaved model of {leftover.layer!r} (step {model.step}, best "
                f"weights from step {model.best_step}). Denoise with it, or save it with Save "
                "model… to keep it.")
        _autosave.discard(leftover.path)
        self._offer_next_leftover()

    def _discard_leftover(self) -> None:
        if self._leftover is not None:
            _autosave.discard(self._leftover.path)
        self._offer_next_leftover()

    def _update_buttons(self) -> None:
        state = self.state
        self.train_button.setEnabled(not state.busy and state.axes_ok)
        if state.busy:
            why = "A job is running: Stop it, or wait for it to end."
        elif not state.axes_ok:
            why = state.choice_problem or "Choose an image layer and its axes above."
        else:
            why = ""
        self.train_button.setToolTip(
            "Train a denoising network on the chosen image (no clean image needed), then "
            "denoise it with the best weights." + (f"\n\nNot now: {why}" if why else ""))
        self.stop_button.setEnabled(state.busy)
        self.resume.setEnabled(state.model is not None and not state.busy)
        if state.model is None:
            self.resume.setChecked(False)

    def _on_quality(self) -> None:
        """The whole image's estimate of the model on the curve, at its last step."""
        state = self.state
        report, model = state.quality, state.quality_model
        if report is None or model is None or model is not state.model or not model.history:
            return
        low, high = report.psnr_interval()
        self.loss_plot.show_whole_image(int(model.history[-1]["step"]), report.psnr(), low,
                                        high)

    def _on_model_loaded(self, model: engine.GR2RModel) -> None:
        """Draw the loaded model's losses, and offer to continue training it."""
        self.loss_plot.clear()
        for row in model.history:
            values = {k: v for k, v in row.items() if k not in _NOT_PLOTTED}
            self.loss_plot.add_point(int(row["step"]), values)
            self.loss_plot.add_estimated_psnr(int(row["step"]), row.get("estimated_psnr"))
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
        self._fresh = model is None  # the plot is cleared once the new run has started
        self.collapse_warning.hide()
        self._train_layer, self._train_axes, self._train_config = layer, axes, config
        self._last_preview_step = model.step if model is not None else 0
        self._preview_layer = None
        data = layer_array(layer) if len(layers) == 1 else [layer_array(each) for each in layers]
        # a large layer's result goes block by block into a zarr store: Denoise does that
        denoise_after = self.result_layer.isChecked() and not is_large(layer)
        try:
            self._autosave = _autosave.new_autosave(layer.name)
        except OSError:  # no cache folder: train without the autosave
            self._autosave = None
        self._relay = ProgressRelay()
        self._relay.progressed.connect(self._on_denoise_progress)
        state.progress_busy("preparing…")
        names = ", ".join(repr(each.name) for each in layers)
        # a continued model keeps the noise it was trained with
        self._noise_from = state.noise_name if state.noise is not None and model is None else ""
        state.show_message(f"Training on {names} ({axes})…")
        state.model_label.setText(
            f"Continuing the current model from step {model.step}…" if model is not None
            else "Training a new model…"
        )
        job = TrainingJob()
        self._job = job
        if state.run_job(job, job.run, data, axes, config, model, state.settings.device_id(),
                         denoise_after=denoise_after, checkpoint_path=self._autosave,
                         progress=self._relay, noise=state.noise, yielded=self.on_event,
                         returned=self._on_returned, errored=self._on_error,
                         finished=self._on_finished,
                         refused=self._on_refused) is not None:
            job.stop_on_sigterm(then=self._on_sigterm)  # as Stop; see _signals

    def on_event(self, event: Any) -> None:
        """Draw one event of the training worker (on the main thread)."""
        progress = self.state.progress
        if isinstance(event, engine.TrainingStarted):
            if self._fresh:
                self.loss_plot.clear()
            self._net_dims = event.net_dims
            progress.setRange(0, max(event.total_steps, 1))
            progress.setValue(event.step)
            self.state.show_message(started_text(event, self._noise_from))
        elif isinstance(event, engine.TrainingProgress):
            values = {"loss": event.loss, **event.terms}
            if event.validated and event.val_loss is not None:
                values["val_loss"] = event.val_loss
            self.loss_plot.add_point(event.step, values)
            if event.validated:
                self.loss_plot.add_estimated_psnr(event.step, event.estimated_psnr)
            progress.setRange(0, max(event.total_steps, 1))
            progress.setValue(event.step)
            progress.setFormat(
                f"step {event.step}/{event.total_steps} · {event.patches_per_s:.0f} patches/s · "
                f"{format_duration(event.eta_s, clock=True)} left"
            )
            self._maybe_request_preview(event.step)
        elif isinstance(event, engine.CollapseDetected):
            # napari's worker also relays the engine's CollapseWarning to the notifications
            self.collapse_warning.setText(f"⚠ {event.message}")
            self.collapse_warning.show()
        elif isinstance(event, engine.TrainingFinished):
            progress.setValue(event.step)
            how = "Stopped" if event.stopped else "Finished"
            self._finished_text = (f"{how} at step {event.step}; best weights from step "
                                   f"{event.best_step} kept")
            progress.setFormat(f"{how} at step {event.step}")
            self.state.show_message(f"{self._finished_text}. Denoise or save the model.")
        elif event is TrainingPhase.DENOISING:
            self.state.progress_busy("denoising the result…")
            self.state.show_message(f"{self._finished_text}; denoising "
                                    f"{self._train_layer.name!r} with them…")
        elif isinstance(event, PreviewResult) and self._train_layer in self.viewer.layers:
            self._preview_layer = put_layer(
                self.viewer, as_display_dtype(event.data, self._train_layer), event.layer_kwargs)

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

    def _on_denoise_progress(self, done: int, total: int) -> None:
        progress = self.state.progress
        progress.setRange(0, max(total, 1))
        progress.setValue(done)
        progress.setFormat(f"denoising the result: tile {done}/{total}")

    def _on_returned(self, result: tuple[Any, Any]) -> None:
        model, out = result
        if model is not None:
            self.state.set_model(model)
            self.resume.setChecked(True)
        layer = self._train_layer
        if out is None or layer is None or layer not in self.viewer.layers:
            return
        name = denoised_name(layer)
        add_result_layer(self.viewer, layer, out, model)
        preview = self._preview_layer
        if preview is not None and preview in self.viewer.layers:
            self.viewer.layers.remove(preview)  # the result replaces the live preview
        self.state.progress.setFormat("done")
        self.state.show_message(f"{self._finished_text}; denoised {layer.name!r} into {name!r}.")

    def _on_refused(self, message: str) -> None:
        """The engine refused the image or the settings: say why; nothing else changes."""
        self.state.progress_idle()
        self.state.show_model()
        self.state.reject(message)

    def _on_error(self, exc: BaseException) -> None:
        """Say what failed; the autosave (if one was written) becomes the current model."""
        self.state.report_worker_error(exc)
        self.state.progress_idle()
        self.state.show_model()
        path = self._autosave
        if path is None or not path.exists():
            return
        try:
            model = engine.load_model(path)
        except engine.GR2RError:
            return
        self.state.set_model(model)
        self.state.show_message(f"{type(exc).__name__}: {exc} The last autosave (step "
                                f"{model.step}) is the current model.", error=True)

    def _on_sigterm(self) -> None:
        self.state.show_message("SIGTERM received: stopping after the current step; the best "
                                "weights are kept (and autosaved)…")

    def _on_finished(self) -> None:
        if self.state.progress.maximum() == 0:
            self.state.progress_idle()
        job, self._job = self._job, None
        if self._autosave is not None:
            if job is not None and job.stopped_by_sigterm and self._autosave.exists():
                # napari may be ending: the autosave is offered back by the next widget
                self.state.show_message(
                    f"{self.state.message.text()} Stopped by SIGTERM: the best weights are "
                    f"also kept in {self._autosave}, offered back if napari ends now.")
            else:
                _autosave.discard(self._autosave)  # the run ended: nothing to offer later
            self._autosave = None
        self._relay = None


def started_text(event: engine.TrainingStarted, noise_from: str = "") -> str:
    """What a run that has started trains, where, at which precision, on which noise
    (``noise_from``: the calibration's name, "" for the noise fitted on the image) and with
    how many neighbouring planes."""
    text = (f"Training {event.networks} ({event.n_parameters:,} parameters) on "
            f"{event.device}" + (f" at {event.precision}" if event.precision != "fp32" else ""))
    text += (f"; noise SD {event.noise_sd:.3g} from {noise_from}" if noise_from
             else f"; estimated noise SD {event.noise_sd:.3g}")
    if event.noise_correlation:
        text += f", correlated between neighbouring pixels ({event.noise_correlation:.2f})"
        if event.noise_source == "fit":  # fine texture can pass for correlation in a fit
            text += (" as fitted on the image; repeated captures of a still field measure it "
                     "exactly (Noise and quality: Noise from a calibration)")
    if event.context:
        text += f"; {event.context} neighbouring plane(s) on each side"
    return text + "."
