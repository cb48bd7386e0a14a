"""What the panels of the GR2R widget share, and the base class of a panel.

:class:`WidgetState` holds the viewer, the current model, the layer and axes chosen and the
jobs running, and says what changed through Qt signals. It also owns the status lines every
panel writes to: the running job's progress bar, the current model's description and the
message line. A panel reads and changes the state and listens to its signals; it never
reaches into another panel's widgets. :class:`~._widget.GR2RWidget` creates one state and
composes the panels around it; a test builds one state and a single panel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from napari.utils.notifications import show_warning
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import QLabel, QProgressBar, QWidget

from napari_gr2r import engine

if TYPE_CHECKING:
    import napari

    from ._jobs import Job
    from ._workers import TrainingJob

ERROR_STYLE = "color: #ff7070;"
OK_STYLE = "color: #8fd18f;"
WARN_STYLE = "color: #ffcc55; font-weight: bold;"
NO_MODEL = "No model yet: train one or load one."


class TrainingSettings(Protocol):
    """Where the training panel gets its settings (the settings panel, in the widget)."""

    def config(self) -> engine.TrainConfig: ...

    def device_id(self) -> str: ...

    def preview_interval(self) -> int: ...


class DefaultSettings:
    """The settings of a state no settings panel serves: the preset's, on the automatic device."""

    def __init__(self, preset: str = "balanced") -> None:
        self.preset = preset

    def config(self) -> engine.TrainConfig:
        return engine.TrainConfig.from_preset(self.preset)

    def device_id(self) -> str:
        return "auto"

    def preview_interval(self) -> int:
        return 0


class WidgetState(QObject):
    """The shared state of the GR2R widget's panels.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose layers the panels read and add to.
    """

    model_changed = Signal()
    """The current model was replaced (trained, loaded or cleared)."""
    model_loaded = Signal(object)
    """A model was loaded from a file (its settings and history are shown again)."""
    choice_changed = Signal()
    """The chosen layer or axes changed."""
    busy_changed = Signal()
    """A job (training or denoising) started or ended."""
    files_requested = Signal(object)
    """Denoise files… was pressed: the widget shows this files panel (in a tab)."""
    quality_changed = Signal()
    """A new error estimate (:attr:`quality`) of the current model on a layer."""
    noise_changed = Signal()
    """The noise training and the estimate use changed (:attr:`noise`)."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.model: engine.GR2RModel | None = None
        self.layer: Any = None
        """The chosen image layer (set by the data panel)."""
        self.axes = ""
        """Its axes as typed, upper case."""
        self.axes_ok = False
        """Whether the axes fit the layer for training."""
        self.choice_problem = ""
        """Why the layer and axes cannot be trained on, in words ("" when they can)."""
        self.more_layers: list[Any] = []
        """Further layers to train on with the chosen one (same axes and channels)."""
        self.settings: TrainingSettings = DefaultSettings()
        self.noise: engine.NoiseCalibration | None = None
        """The noise from a calibration that training and the estimate use instead of a fit
        on the image (set by the Noise panel); None: fitted on the image."""
        self.noise_name = ""
        """Where :attr:`noise` came from, in words (a file's name, a layer's)."""
        self.closed = False
        """True once :meth:`shutdown` ran: no job starts any more."""
        self.jobs: dict[str, Job] = {}
        """The running jobs, one per kind (see :meth:`job`)."""
        self.quality: engine.QualityReport | None = None
        """The latest error estimate, of :attr:`quality_model` on the layer :attr:`quality_layer`."""
        self.quality_model: engine.GR2RModel | None = None
        self.quality_layer = ""
        self.progress = QProgressBar()
        """The running job's progress, drawn by the panel that runs it."""
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        self.model_label = QLabel(NO_MODEL)
        """The current model, or the one being trained."""
        self.model_label.setWordWrap(True)
        self.message = QLabel()
        """The last thing done or refused."""
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    # ---------------------------------------------------------------------------- choice, model
    def chosen_layer(self) -> Any:
        """The chosen layer while it is still in the viewer, else None."""
        layer = self.layer
        return layer if layer is not None and layer in self.viewer.layers else None

    def set_choice(self, layer: Any, axes: str, axes_ok: bool,
                   more_layers: list[Any] | None = None, problem: str = "") -> None:
        self.layer, self.axes, self.axes_ok = layer, axes.strip().upper(), axes_ok
        self.choice_problem = problem
        self.more_layers = list(more_layers or [])
        self.choice_changed.emit()

    def training_layers(self) -> list[Any]:
        """The chosen layer and the further ones still in the viewer (what Train uses)."""
        layer = self.chosen_layer()
        if layer is None:
            return []
        return [layer, *(m for m in self.more_layers if m in self.viewer.layers and m != layer)]

    def set_model(self, model: engine.GR2RModel | None) -> None:
        self.model = model
        self.show_model()
        self.model_changed.emit()

    def show_model(self) -> None:
        """Describe the current model in :attr:`model_label` (after a run that did not start)."""
        model = self.model
        if model is None:
            self.model_label.setText(NO_MODEL)
        else:
            cfg = model.config
            self.model_label.setText(
                f"Model: {cfg.method}, {model.dims}D network (width {cfg.width}, depth {cfg.depth}), "
                f"axes {model.axes}, {model.channels} channel(s), {model.step} steps "
                f"(best at step {model.best_step})."
            )

    # ------------------------------------------------------------------------------------- jobs
    def job(self, kind: str) -> Job | None:
        """The running job of this kind (``"train"``, ``"denoise"``, ``"assess"``, …), if any."""
        job = self.jobs.get(kind)
        return job if job is not None and not job.done else None

    @property
    def train_job(self) -> TrainingJob | None:
        return self.job("train")  # type: ignore[return-value]

    @property
    def training(self) -> bool:
        return self.job("train") is not None

    @property
    def denoising(self) -> bool:
        return self.job("denoise") is not None

    @property
    def assessing(self) -> bool:
        return self.job("assess") is not None

    @property
    def busy(self) -> bool:
        """Training or denoising (an assessment works on a copy of the model: not busy)."""
        return self.training or self.denoising

    def run_job(self, job: Job, func: Callable[..., Any], *args: Any,
                finished: Callable[[], Any] | None = None, **kwargs: Any) -> Any:
        """Start ``job`` (see :meth:`Job.start`) as the running job of its kind.

        ``busy_changed`` is emitted when it starts and, after ``finished``, when it ends.
        Once the state is shut down (the widget or viewer closed), nothing starts: returns None.
        """
        if self.closed:
            return None
        def on_finished() -> None:
            if finished is not None:
                finished()
            if self.jobs.get(job.kind) is job:
                del self.jobs[job.kind]
            self.busy_changed.emit()

        self.jobs[job.kind] = job
        worker = job.start(func, *args, finished=on_finished, **kwargs)
        self.busy_changed.emit()
        return worker

    def set_noise(self, noise: engine.NoiseCalibration | None, name: str = "") -> None:
        """Use ``noise`` (a calibration) for training and the estimate; None: fit it."""
        self.noise, self.noise_name = noise, name if noise is not None else ""
        self.noise_changed.emit()

    def set_quality(self, report: engine.QualityReport | None, model: Any, layer_name: str,
                    ) -> None:
        self.quality, self.quality_model, self.quality_layer = report, model, layer_name
        self.quality_changed.emit()

    def quality_of(self, model: Any, layer_name: str) -> engine.QualityReport | None:
        """The error estimate of ``model`` on the layer named ``layer_name``, if there is one."""
        if self.quality is not None and self.quality_model is model and \
                self.quality_layer == layer_name:
            return self.quality
        return None

    def stop_jobs(self) -> None:
        """Ask the running jobs to stop: training after its step, denoising after its tile."""
        train = self.train_job
        if train is not None:
            denoising = train.denoising
            train.request_stop()
            self.show_message("Stopping the denoising of the result…" if denoising else
                              "Stopping after the current step; the best weights are kept…")
        denoise = self.job("denoise")
        if denoise is not None:
            denoise.request_stop()
            self.show_message("Stopping the denoising…")
        assess = self.job("assess")
        if assess is not None:
            assess.request_stop()

    def shutdown(self) -> None:
        """Stop every job and drop its results (the widget or the viewer is closing)."""
        self.closed = True
        jobs = list(self.jobs.values())
        for job in jobs:
            job.abandon()
        for job in jobs:
            job.wait()
        self.jobs.clear()

    def progress_idle(self) -> None:
        self.progress.setRange(0, 1)
        self.progress.setFormat("idle")

    def progress_busy(self, text: str) -> None:
        """A job under way whose length is not known yet."""
        self.progress.setRange(0, 0)
        self.progress.setFormat(text)

    # ---------------------------------------------------------------------------------- messages
    def show_message(self, text: str, error: bool = False, warning: bool = False) -> None:
        """The message line: ``error`` in red, ``warning`` (a result to check) in amber."""
        self.message.setText(text)
        self.message.setStyleSheet(ERROR_STYLE if error else WARN_STYLE if warning else "")

    def reject(self, text: str) -> None:
        """A bad choice: say why in the widget and in napari's notifications."""
        self.show_message(text, error=True)
        show_warning(text)

    def report_worker_error(self, exc: BaseException) -> None:
        self.show_message(f"{type(exc).__name__}: {exc}", error=True)


class Panel(QWidget):
    """A part of the GR2R widget, built on the shared :class:`WidgetState`.

    A subclass builds its widgets in ``__init__``, changes the state through its methods and
    follows it through its signals; the widget adds the panel to its layout.
    """

    def __init__(self, state: WidgetState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state

    @property
    def viewer(self) -> napari.viewer.Viewer:
        return self.state.viewer
