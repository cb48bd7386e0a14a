"""The export panel: Export to BioImage Model Zoo… writes the current model as a zoo package.

The package (see :mod:`napari_gr2r.engine.export.bioimageio`) is written in a worker thread; its
test image is the centre of the chosen layer when the layer has the model's axes, otherwise a
synthetic image with the model's noise.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from napari.utils.notifications import show_info
from qtpy.QtWidgets import QFileDialog, QPushButton, QVBoxLayout, QWidget

from napari_gr2r import engine
from napari_gr2r.engine.export.bioimageio import INSTALL_HINT

from ._jobs import Job
from ._layers import layer_array
from ._state import Panel, WidgetState

PACKAGE_FILES = "BioImage Model Zoo package (*.zip)"
EXPORT_TIP = ("Write the model as a BioImage Model Zoo package (.zip) for Fiji (deepImageJ), "
              "ilastik, BioEngine or bioimageio.core.")


def export_available() -> bool:
    """Whether the export's optional dependency (bioimageio.spec) is installed."""
    try:
        return importlib.util.find_spec("bioimageio.spec") is not None
    except (ImportError, ValueError):  # a parent package missing or broken
        return False


class ExportPanel(Panel):
    """Export to BioImage Model Zoo…, enabled while there is a model and no training."""

    def __init__(self, state: WidgetState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.export_button = QPushButton("Export to BioImage Model Zoo…")
        self.available = export_available()
        self.export_button.setToolTip(EXPORT_TIP if self.available else (
            f"{EXPORT_TIP}\n\nNot available: it needs an optional part of napari-gr2r. "
            f"Install it with {INSTALL_HINT} and restart napari."))
        self.export_button.clicked.connect(self._on_export_clicked)
        layout.addWidget(self.export_button)
        for signal in (state.model_changed, state.busy_changed):
            signal.connect(self._update_buttons)
        self._update_buttons()

    @property
    def exporting(self) -> bool:
        return self.state.job("export") is not None

    def _update_buttons(self) -> None:
        state = self.state
        self.export_button.setEnabled(self.available and state.model is not None
                                      and not state.training and not self.exporting)

    def _on_export_clicked(self) -> None:
        self.export(None)

    def export(self, path: str | None = None) -> Any:
        """Export the current model to ``path`` (asked for in a dialog when None).

        Returns the worker writing the package, or None when nothing is exported.
        """
        state = self.state
        if state.model is None:
            state.reject("No model to export: train one or load one first.")
            return None
        if self.exporting:
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export to BioImage Model Zoo",
                                                  "gr2r-model.zip", PACKAGE_FILES)
            if not path:
                return None
        if Path(path).suffix.lower() != ".zip":
            path = str(path) + ".zip"
        state.show_message(f"Exporting the model to {path}…")
        return state.run_job(Job("export"), engine.export_bioimageio, state.model, path,
                             test_input=self._test_input(), returned=self._on_exported,
                             errored=self._on_error, refused=self._on_refused)

    def _test_input(self) -> Any:
        """The chosen layer's data when it has the model's axes (its centre is the test image)."""
        layer = self.state.chosen_layer()
        model = self.state.model
        if layer is None or model is None or self.state.axes != model.axes:
            return None
        data = layer_array(layer)
        return data if len(data.shape) == len(model.axes) else None

    def _on_exported(self, path: Path) -> None:
        self.state.show_message(f"Exported the model to {path}.")
        show_info(f"BioImage Model Zoo package written to {path}")

    def _on_error(self, exc: BaseException) -> None:
        self.state.reject(f"Could not export the model: {exc}")

    def _on_refused(self, message: str) -> None:
        self.state.reject(f"Could not export the model: {message}")
