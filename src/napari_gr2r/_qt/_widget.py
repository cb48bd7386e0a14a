"""The GR2R Denoise dock widget: train on an image layer, watch the losses, denoise.

The widget is thin: it turns layers into arrays and axes, events into pixels, and calls
:mod:`napari_gr2r.engine` in napari thread workers. It never touches tensors.

It is composed of panels, one module each, over one shared :class:`~._state.WidgetState`
(the current model, the chosen layer and axes, the running job, the status lines):

- :mod:`._data_panel`: the image layer and its axes;
- :mod:`._settings_panel`: preset, device, preview interval, advanced settings;
- :mod:`._training_panel`: Train and Stop, the loss plot and collapse warning, the preview;
- :mod:`._denoise_panel`: Denoise (in memory or into zarr), Save and Load model, and
  Denoise files…, which docks :mod:`._files_panel` (files or a folder into a folder).
- :mod:`._export_panel`: Export to BioImage Model Zoo….
- :mod:`._noise_panel` (the collapsible **Noise** section): the fitted noise model, the current
  model's estimated error without a clean image, and whether it removes signal.

A new panel is a module ``_qt/_<name>_panel.py`` with a :class:`~._state.Panel` subclass that
takes the state, reads and changes it and follows its signals (never another panel's
widgets); :meth:`GR2RWidget._build` adds it to the layout where it belongs.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QApplication, QFormLayout, QMainWindow, QVBoxLayout, QWidget
from superqt import QCollapsible

from ._data_panel import DataPanel
from ._denoise_panel import DenoisePanel
from ._export_panel import ExportPanel
from ._noise_panel import NoisePanel
from ._settings_panel import SettingsPanel
from ._state import WidgetState
from ._training_panel import TrainingPanel, format_duration

if TYPE_CHECKING:
    import napari

    from napari_gr2r import engine

__all__ = ["GR2RWidget", "format_duration"]


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
        self._closed = False
        self.state = WidgetState(napari_viewer, parent=self)
        self._build()
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._teardown)

    def _build(self) -> None:
        state = self.state
        self.data_panel = DataPanel(state)
        self.settings_panel = SettingsPanel(state)
        state.settings = self.settings_panel
        self.training_panel = TrainingPanel(state)
        self.denoise_panel = DenoisePanel(state)
        self.export_panel = ExportPanel(state)
        self.noise_panel = NoisePanel(state)
        self.noise_section = QCollapsible("Noise")
        self.noise_section.addWidget(self.noise_panel)
        layout = QVBoxLayout(self)
        layout.addWidget(self.data_panel)
        layout.addWidget(self.settings_panel)
        layout.addWidget(self.training_panel)
        layout.addWidget(self.denoise_panel)
        layout.addWidget(self.export_panel)
        layout.addWidget(state.progress)
        layout.addWidget(self.training_panel.monitor, 1)
        layout.addWidget(self.noise_section)
        layout.addWidget(state.model_label)
        layout.addWidget(state.message)
        self._expose_panel_widgets()

    def _expose_panel_widgets(self) -> None:
        """The panels' controls as attributes of the widget (``widget.train_button``, …)."""
        panels = {
            self.data_panel: ("layer_combo", "axes_edit", "axes_message", "several", "more_list"),
            self.settings_panel: ("preset", "device", "preview_every", "advanced", "method",
                                  "steps", "batch", "patch", "patch_z", "lr", "gamma",
                                  "lambda_g", "width", "depth", "noise_sigma", "net_dims",
                                  "val_fraction", "seed"),
            self.training_panel: ("resume", "result_layer", "train_button", "stop_button",
                                  "collapse_warning", "loss_plot", "autosave_offer"),
            self.denoise_panel: ("save_button", "load_button", "denoise_button", "files_button"),
            self.export_panel: ("export_button",),
            self.noise_panel: ("assess_button",),
            self.state: ("progress", "model_label", "message"),
        }
        for owner, names in panels.items():
            for name in names:
                setattr(self, name, getattr(owner, name))

    # ======================================================================== shared state
    @property
    def training(self) -> bool:
        return self.state.training

    @property
    def denoising(self) -> bool:
        return self.state.denoising

    @property
    def _model(self) -> engine.GR2RModel | None:
        return self.state.model

    @property
    def _job(self) -> Any:
        return self.state.train_job

    @property
    def _worker(self) -> Any:
        return self.state.train_worker

    @property
    def _denoise_worker(self) -> Any:
        return self.state.denoise_worker

    @property
    def _zarr_out(self) -> str | None:
        return self.denoise_panel.zarr_out

    @_zarr_out.setter
    def _zarr_out(self, path: str | None) -> None:
        self.denoise_panel.zarr_out = path

    def _set_model(self, model: engine.GR2RModel | None) -> None:
        self.state.set_model(model)

    def _selected_layer(self) -> Any:
        return self.data_panel.selected_layer()

    def _config(self) -> engine.TrainConfig:
        return self.settings_panel.config()

    def _device(self) -> str:
        return self.settings_panel.device_id()

    # ============================================================================ actions
    def _on_train(self) -> None:
        self.training_panel.start()

    def _on_train_event(self, event: Any) -> None:
        self.training_panel.on_event(event)

    def _on_stop(self) -> None:
        self.state.stop_jobs()

    def _on_denoise(self) -> None:
        self.denoise_panel.start()

    def _save_model(self, path: str | None = None) -> None:
        self.denoise_panel.save_model(path)

    def _load_model(self, path: str | None = None) -> None:
        self.denoise_panel.load_model(path)

    # ============================================================================ closing
    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is None:
                self._teardown()
            else:
                self._watch_window()
        return super().event(event)

    def showEvent(self, event: Any) -> None:
        self._watch_window()
        # once styled (napari's stylesheet sets the font): the stacked forms' labels line up
        _align_labels(self.data_panel.form, self.settings_panel.form)
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
        self.state.shutdown()
        with contextlib.suppress(AttributeError, RuntimeError, ValueError):
            self.data_panel.disconnect_viewer()
        app = QApplication.instance()
        if app is not None:
            with contextlib.suppress(TypeError, RuntimeError):
                app.aboutToQuit.disconnect(self._teardown)


def _align_labels(*forms: QFormLayout) -> None:
    """Give the label columns of forms stacked one over another the same width."""
    labels = [form.itemAt(row, QFormLayout.ItemRole.LabelRole) for form in forms
              for row in range(form.rowCount())]
    widgets = [item.widget() for item in labels if item is not None and item.widget() is not None]
    width = max((w.sizeHint().width() for w in widgets), default=0)
    for w in widgets:
        w.setMinimumWidth(width)
