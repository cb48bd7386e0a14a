"""Where the noise comes from: fitted on the image, or a calibration (a file, or a layer of
repeated captures of a still field).

:class:`NoiseSource` is the top of the Noise section. With *a calibration*, **Load
calibration…** reads what ``napari-gr2r calibrate`` writes (:meth:`engine.NoiseCalibration.load`)
and **Calibrate** measures one from the captures layer chosen beside it
(:func:`engine.calibrate_noise`, in a worker); **Save calibration…** writes it for the command
line (``--noise FILE``). The calibration in use is the state's ``noise``
(:meth:`~._state.WidgetState.set_noise`): a new model's training generates its noise with it,
and **Assess** estimates the error with it, as ``--noise`` does on ``train`` and ``assess``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_gr2r import engine

from ._axes import axes_guess
from ._jobs import Job
from ._layers import data_shape, is_image_layer, layer_array
from ._state import Panel, WidgetState

FILE_FILTER = "Noise calibration (*.json);;All files (*)"
NO_CALIBRATION = ("No calibration yet: load a calibration file (the command line's calibrate "
                  "command writes one), or choose a layer of repeated captures of a still "
                  "field and press Calibrate. Until then the noise is fitted on the image.")


def captures_axes(layer: Any) -> str:
    """The axes of a layer of repeated captures, with T for the captures: a stack of planes is
    ``TYX`` whatever its shape suggests (as ``napari-gr2r calibrate`` reads one); a deeper
    layer's T is the axis its labels or shape give as T, S or Z."""
    rgb = bool(getattr(layer, "rgb", False))
    if len(data_shape(layer)) == 3 + rgb:
        return "TYXC" if rgb else "TYX"
    axes = axes_guess(layer).axes
    if "T" in axes:
        return axes
    for letter in "SZ":
        if letter in axes:
            return axes.replace(letter, "T", 1)
    raise engine.InputError(
        f"The layer {layer.name!r} (shape {data_shape(layer)}) holds one plane: a calibration "
        "needs two or more captures of the same field, stacked along the first axis.")


def calibration_words(cal: engine.NoiseCalibration, name: str) -> str:
    """A calibration in one line: its variance function, how many captures, where from."""
    how = f"{cal.frames} captures" if cal.frames else "the camera's numbers"
    return (f"Calibration from {name} ({how}): {cal.describe()}"
            + (f", {len(cal.gain)} channels" if len(cal.gain) > 1 else "") + ".")


class _RefreshingCombo(QComboBox):
    """A combo box that calls ``refresh`` before it opens its list (the layers change)."""

    def __init__(self, refresh: Callable[[], Any]) -> None:
        super().__init__()
        self._refresh = refresh

    def showPopup(self) -> None:
        self._refresh()
        super().showPopup()


class NoiseSource(Panel):
    """"Noise from": fitted on the image, or a calibration; sets the state's ``noise``."""

    def __init__(self, state: WidgetState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        self.calibration: engine.NoiseCalibration | None = None
        self.calibration_name = ""
        self.source = QComboBox()
        self.source.addItem("fitted on this image", "fit")
        self.source.addItem("a calibration", "calibration")
        self.source.setToolTip(
            "The noise that training generates and the quality estimate assumes. Fitted on "
            "this image: measured on the image itself. A calibration: measured once on repeated "
            "captures of a still field (or from the camera's numbers), in the image's units; "
            "more exact where the image has little flat background. A model keeps the noise it "
            "was trained with.")
        self.source.currentIndexChanged.connect(self._publish)
        top = QHBoxLayout()
        top.addWidget(QLabel("Noise from"))
        top.addWidget(self.source, 1)
        self.details = QWidget()
        self._build_details()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.details)
        self._publish()

    def _build_details(self) -> None:
        box = QVBoxLayout(self.details)
        box.setContentsMargins(0, 0, 0, 0)
        files = QHBoxLayout()
        self.load_button = QPushButton("Load calibration…")
        self.load_button.setToolTip("Read a noise calibration written by 'napari-gr2r "
                                    "calibrate' (or by Save calibration…), a .json file.")
        self.load_button.clicked.connect(self._ask_file)
        self.save_button = QPushButton("Save calibration…")
        self.save_button.setToolTip("Write the calibration as a .json file, for another "
                                    "session or the command line's --noise.")
        self.save_button.clicked.connect(self._ask_save)
        files.addWidget(self.load_button)
        files.addWidget(self.save_button)
        box.addLayout(files)
        captures = QHBoxLayout()
        self.captures = _RefreshingCombo(self.refresh_captures)
        self.captures.setToolTip(
            "An image layer of two or more captures of the same still field, stacked along "
            "its first axis (T), in the same units as the image to denoise: nothing may move "
            "or saturate between them.")
        self.calibrate_button = QPushButton("Calibrate")
        self.calibrate_button.setToolTip("Measure the noise on the captures layer "
                                         "(engine.calibrate_noise).")
        self.calibrate_button.clicked.connect(self.calibrate)
        captures.addWidget(QLabel("Captures"))
        captures.addWidget(self.captures, 1)
        captures.addWidget(self.calibrate_button)
        box.addLayout(captures)
        self.label = QLabel(NO_CALIBRATION)
        self.label.setWordWrap(True)
        box.addWidget(self.label)

    # --------------------------------------------------------------------------- choosing
    def _publish(self) -> None:
        """Give the state the chosen noise: the calibration, or None (fitted)."""
        calibrated = self.source.currentData() == "calibration"
        self.details.setVisible(calibrated)
        self.save_button.setEnabled(self.calibration is not None)
        if calibrated:
            self.refresh_captures()
        if calibrated and self.calibration is not None:
            self.state.set_noise(self.calibration, self.calibration_name)
        else:
            self.state.set_noise(None)

    def use(self, cal: engine.NoiseCalibration, name: str) -> None:
        """Use ``cal`` (called ``name`` in the messages) for training and the estimate."""
        self.calibration, self.calibration_name = cal, name
        self.label.setText(calibration_words(cal, name))
        self.source.blockSignals(True)
        self.source.setCurrentIndex(self.source.findData("calibration"))
        self.source.blockSignals(False)
        self._publish()
        self.state.show_message(f"Training and Assess now use the noise calibration from "
                                f"{name}.")

    def load_file(self, path: str | Path) -> bool:
        """Use the calibration in the file ``path``; False (and why, in the widget) if not."""
        try:
            cal = engine.NoiseCalibration.load(path)
        except engine.GR2RError as exc:
            self.state.reject(str(exc))
            return False
        self.use(cal, Path(path).name)
        return True

    def _ask_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a noise calibration", "", FILE_FILTER)
        if path:
            self.load_file(path)

    def save_file(self, path: str | Path) -> None:
        if self.calibration is None:
            return
        try:
            self.calibration.save(path)
        except OSError as exc:
            self.state.reject(f"Could not write {path}: {exc}")
            return
        self.state.show_message(f"Saved the noise calibration to {path}.")

    def _ask_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the noise calibration",
                                              "camera.noise.json", FILE_FILTER)
        if path:
            self.save_file(path)

    # -------------------------------------------------------------------- from captures
    def refresh_captures(self) -> None:
        """List the viewer's image layers with more than one plane (keeping the choice)."""
        current = self.captures.currentText()
        names = [layer.name for layer in self.viewer.layers
                 if is_image_layer(layer) and len(data_shape(layer)) > 2 + bool(layer.rgb)]
        self.captures.blockSignals(True)
        self.captures.clear()
        self.captures.addItems(names)
        if current in names:
            self.captures.setCurrentText(current)
        self.captures.blockSignals(False)
        self.calibrate_button.setEnabled(bool(names) and not self.state.job("calibrate"))

    def calibrate(self) -> None:
        """Measure a calibration on the captures layer, in a worker."""
        name = self.captures.currentText()
        if self.state.job("calibrate") is not None:
            return
        if name not in self.viewer.layers:
            self.state.reject("Choose a layer of repeated captures of a still field first.")
            return
        layer = self.viewer.layers[name]
        try:
            axes = captures_axes(layer)
        except engine.GR2RError as exc:
            self.state.reject(str(exc))
            return
        self.calibrate_button.setEnabled(False)
        self.label.setText(f"Calibrating on {name!r} ({axes})…")
        job = Job("calibrate")
        self.state.run_job(job, engine.calibrate_noise, layer_array(layer), axes,
                           returned=lambda cal: self.use(cal, f"the layer {name!r}"),
                           refused=self._refused, errored=self.state.report_worker_error,
                           finished=lambda: self.calibrate_button.setEnabled(True))

    def _refused(self, message: str) -> None:
        self.label.setText(calibration_words(self.calibration, self.calibration_name)
                           if self.calibration is not None else NO_CALIBRATION)
        self.state.reject(message)
