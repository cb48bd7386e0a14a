"""The GR2R Denoise dock widget: train on an image layer, watch the losses, denoise.

The widget is thin: it turns layers into arrays and axes, events into pixels, and calls
:mod:`napari_gr2r.engine` in napari thread workers. It never touches tensors.

It is composed of panels, one module each, over one shared :class:`~._state.WidgetState`
(the current model, the chosen layer and axes, the running job, the status lines):

- :mod:`._data_panel`: the image layer and its axes;
- :mod:`._settings_panel`: preset, neighbouring planes, device, preview interval, advanced
  settings (precision and compilation among them);
- :mod:`._training_panel`: Train and Stop, the loss plot and collapse warning, the preview;
- :mod:`._denoise_panel`: Denoise (in memory or into zarr), Save and Load model, and
  Denoise files…, which opens :mod:`._files_panel` (files or a folder into a folder) as the
  widget's second tab.
- :mod:`._export_panel`: Export to BioImage Model Zoo….
- :mod:`._noise_panel` (the collapsible **Noise** section): where the noise comes from (fitted
  on the image, or a calibration: :mod:`._calibration`), the noise model, the current model's
  estimated error without a clean image, and whether it removes signal.

A new panel is a module ``_qt/_<name>_panel.py`` with a :class:`~._state.Panel` subclass that
takes the state, reads and changes it and follows its signals (never another panel's
widgets); :meth:`GR2RWidget._build` adds it to the layout where it belongs.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QEvent, QObject, QPoint, QSize, Qt
from qtpy.QtWidgets import (
    QApplication,
    QFormLayout,
    QFrame,
    QMainWindow,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
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

__all__ = ["GR2RWidget", "format_duration"]


class GR2RWidget(QWidget):
    """Dock widget: layer, axes, preset and settings; Train, Stop, Save, Load, Denoise.

    Its panels are attributes (``data_panel``, ``settings_panel``, ``training_panel``,
    ``denoise_panel``, ``export_panel``, ``noise_panel``) over one shared ``state``; code and
    tests reach a control through its panel (``widget.training_panel.train_button``).

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose image layers are offered.
    """

    DEFAULT_WIDTH = 400
    """The dock's width when it opens: the canvas keeps most of a laptop screen."""

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
        self.noise_section = QCollapsible("Noise and quality")
        self.noise_section.addWidget(self.noise_panel)
        content = QWidget()
        column = QVBoxLayout(content)
        for part in (self.data_panel, self.settings_panel, self.training_panel,
                     self.denoise_panel, self.export_panel):
            column.addWidget(part)
        column.addWidget(self.training_panel.monitor, 1)
        column.addWidget(self.noise_section)
        self.tabs = QTabWidget()
        self._image_area = _scrolling(content)
        self.tabs.addTab(self._image_area, "Image")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs, 1)
        for line in (state.progress, state.model_label, state.message):
            layout.addWidget(line)
        self._files_area: QScrollArea | None = None
        state.files_requested.connect(self._show_files_tab)
        state.busy_changed.connect(self._follow_training)

    def _follow_training(self) -> None:
        """When training starts, scroll Train and Stop to the top: the losses show below them
        (and the status lines stay under the scrolling part)."""
        if self.state.training and not self._closed:
            button = self.training_panel.train_button
            top = button.mapTo(self._image_area.widget(), QPoint(0, 0)).y()
            self._image_area.verticalScrollBar().setValue(max(0, top - 8))

    def _show_files_tab(self, panel: QWidget) -> None:
        """Denoise files… opens its panel as a second tab (once), and shows it."""
        if self._files_area is None:
            self._files_area = _scrolling(panel)
            self.tabs.addTab(self._files_area, "Denoise files")
        self.tabs.setCurrentWidget(self._files_area)

    def sizeHint(self) -> QSize:
        return QSize(self.DEFAULT_WIDTH, super().sizeHint().height())

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


def _scrolling(content: QWidget) -> QScrollArea:
    """``content`` in a vertical scroll area, so the dock fits a laptop screen."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(content)
    # never narrower than the content: a control cut at the right edge cannot be reached
    area.setMinimumWidth(content.minimumSizeHint().width()
                         + area.verticalScrollBar().sizeHint().width())
    return area
