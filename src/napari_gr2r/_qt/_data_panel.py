"""The data panel: which image layer to work on and its axes, prefilled and checked; and,
with "Train on several layers", the further layers (of the same axes) to train one model on."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QWidget,
)

from ._axes import AxesGuess, axes_guess, letter_help
from ._layers import (
    LayerChoiceError,
    adding_result,
    check_axes,
    data_shape,
    is_image_layer,
    layer_kind,
)
from ._state import ERROR_STYLE, OK_STYLE, WARN_STYLE, Panel, WidgetState

GUESS_STYLE = WARN_STYLE.replace("font-weight: bold;", "")
LOST_SCALE = (" The file has a pixel size this layer lacks (the reader that opened it kept only "
              "the pixels): open it with File > Open, reader napari-gr2r, and the result keeps "
              "it.")


class DataPanel(Panel):
    """The image layer (image layers only, kept while renamed or moved) and its axes.

    The layer follows napari's selection (the active layer, when it is an image) and is never
    a hidden layer by default. The axes come from the layer's labels or file, else are guessed
    from its shape (shown as a guess, with the other readings as buttons) and are checked as
    they are typed; the choice is published on the state (:meth:`WidgetState.set_choice`).
    """

    def __init__(self, state: WidgetState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        self._layers: list[Any] = []
        self._axes_layer: Any = None
        self._guess: AxesGuess | None = None
        self._inserted: Any = None
        self._problem = ""
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.form = form
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
        form.addRow(self.axes_message)  # the whole width: a long message wraps, not clips
        self.alternatives = QHBoxLayout()
        self.alternatives.setContentsMargins(0, 0, 0, 0)
        self.alternative_buttons: list[QPushButton] = []
        for _ in range(3):
            button = QPushButton()
            button.setFlat(True)
            button.clicked.connect(self._on_alternative)
            button.hide()
            self.alternatives.addWidget(button)
            self.alternative_buttons.append(button)
        self.alternatives.addStretch()
        form.addRow("", self.alternatives)
        self.several = QCheckBox("Train on several layers")
        self.several.setToolTip(
            "Train one model on the chosen layer and on the layers ticked below: image layers "
            "with the same axes and channels (their sizes may differ).")
        self.several.toggled.connect(self._on_several_toggled)
        form.addRow("", self.several)
        self.more_list = QListWidget()
        self.more_list.setToolTip("Further layers to train on (same axes as the chosen one).")
        self.more_list.setMaximumHeight(110)
        self.more_list.itemChanged.connect(self._on_more_changed)
        self.more_list.hide()
        self._more: list[Any] = []
        form.addRow("", self.more_list)
        self.connect_viewer()
        state.model_changed.connect(self._on_model_changed)
        self.refresh_layers()

    # ---------------------------------------------------------------------------- the viewer
    def connect_viewer(self) -> None:
        layers = self.viewer.layers
        layers.events.inserted.connect(self._on_layers_inserted)
        layers.events.removed.connect(self._on_layers_changed)
        layers.events.moved.connect(self._on_layers_changed)
        layers.selection.events.active.connect(self._on_active_changed)
        for layer in layers:
            layer.events.name.connect(self._on_layers_changed)

    def disconnect_viewer(self) -> None:
        layers = self.viewer.layers
        for emitter, callback in (
            (layers.events.inserted, self._on_layers_inserted),
            (layers.events.removed, self._on_layers_changed),
            (layers.events.moved, self._on_layers_changed),
            (layers.selection.events.active, self._on_active_changed),
        ):
            emitter.disconnect(callback)
        for layer in layers:
            layer.events.name.disconnect(self._on_layers_changed)

    def _on_layers_inserted(self, event: Any) -> None:
        event.value.events.name.connect(self._on_layers_changed)
        self._inserted = event.value  # napari makes it the active layer next
        self.refresh_layers()

    def _on_layers_changed(self, event: Any = None) -> None:
        self.refresh_layers()

    def _on_active_changed(self, event: Any = None) -> None:
        """Follow napari's active layer when it is an image layer."""
        active = self.viewer.layers.selection.active
        if active is None or adding_result():
            return
        current = self.selected_layer()
        if active == self._inserted:
            if current is not None and current.visible:
                return  # napari activates each layer it adds: a visible choice is kept
        else:
            self._inserted = None  # the user chose another layer
        if active == current or not is_image_layer(active):
            return
        if active not in self._layers:
            self.refresh_layers()
        if active in self._layers:
            self.layer_combo.setCurrentIndex(self._layers.index(active))

    def _default_layer(self) -> Any:
        """napari's active layer if it is an image, else the topmost visible image layer."""
        active = self.viewer.layers.selection.active
        if active is not None and is_image_layer(active):
            return active
        visible = [layer for layer in self._layers if getattr(layer, "visible", True)]
        return visible[-1] if visible else (self._layers[-1] if self._layers else None)

    # ------------------------------------------------------------------------------- the choice
    def refresh_layers(self) -> None:
        """List the viewer's image layers, keeping the current choice when it is still there."""
        current = self.selected_layer()
        self._layers = [layer for layer in self.viewer.layers if is_image_layer(layer)]
        if current is None:
            current = self._default_layer()
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        for layer in self._layers:
            self.layer_combo.addItem(layer.name)
        index = next((i for i, layer in enumerate(self._layers) if layer == current), 0)
        if self._layers:
            self.layer_combo.setCurrentIndex(index)
        self.layer_combo.blockSignals(False)
        if self._layers and self._layers[index] != self._axes_layer:
            self._on_layer_changed(index)
        elif not self._layers:
            self._axes_layer = None
            self._guess = None
            self.axes_edit.blockSignals(True)
            self.axes_edit.clear()
            self.axes_edit.blockSignals(False)
            self._on_axes_changed()
            return
        self._publish()

    def selected_layer(self) -> Any:
        index = self.layer_combo.currentIndex()
        if 0 <= index < len(self._layers) and self._layers[index] in self.viewer.layers:
            return self._layers[index]
        return None

    def _on_layer_changed(self, index: int) -> None:
        layer = self.selected_layer()
        self._axes_layer = layer
        self._guess = axes_guess(layer) if layer is not None else None
        self._prefer_model_axes()
        if self._guess is not None:
            self.axes_edit.setText(self._guess.axes)
        self._on_axes_changed()

    def _prefer_model_axes(self) -> None:
        """A guess from the shape gives way to the current model's axes when they fit."""
        guess, model, layer = self._guess, self.state.model, self.selected_layer()
        if guess is None or guess.known or model is None or layer is None:
            return
        if model.axes != guess.axes and len(model.axes) == len(data_shape(layer)):
            try:
                check_axes(layer, model.axes)
            except LayerChoiceError:
                return
            others = [guess.axes, *(a for a in guess.alternatives if a != model.axes)]
            self._guess = AxesGuess(model.axes, "the current model", True, others[:3])

    def _on_model_changed(self) -> None:
        guess = self._guess
        if guess is not None and not guess.known and \
                self.axes_edit.text().strip().upper() == guess.axes:
            self._prefer_model_axes()
            if self._guess is not guess:
                self.axes_edit.setText(self._guess.axes)

    def _on_alternative(self) -> None:
        button = self.sender()
        if isinstance(button, QPushButton):
            self._guess = None  # the user chose: no longer a guess
            self.axes_edit.setText(button.text())

    def _no_layer_problem(self) -> str:
        others = [layer for layer in self.viewer.layers if not is_image_layer(layer)]
        if not others:
            return ("No image layer: open an image (File > Open…) or a sample (File > Open "
                    "Sample), then train.")
        kinds = sorted({layer_kind(layer) for layer in others})
        return (f"No image layer: GR2R denoises intensity images, and this viewer has only "
                f"{' and '.join(kinds)} layers. Open or add an image layer to train.")

    def _on_axes_changed(self, text: str | None = None) -> None:
        layer = self.selected_layer()
        guess = self._guess
        if guess is not None and self.axes_edit.text().strip().upper() != guess.axes:
            self._guess = guess = None  # typed by the user
        if layer is None:
            self._set_axes_message(self._no_layer_problem(), ok=False)
        else:
            try:
                info = check_axes(layer, self.axes_edit.text(), training=True)
            except LayerChoiceError as exc:
                self._set_axes_message(str(exc), ok=False)
            else:
                self._show_axes(info, guess)
        self._show_alternatives(guess if guess is not None and not guess.known else None)
        self._publish()

    def _show_axes(self, info: Any, guess: AxesGuess | None) -> None:
        sizes = " × ".join(f"{a}{n}" for a, n in zip(info.axes, info.shape))
        lost = guess is not None and guess.lost_scale
        if guess is not None and not guess.known:
            self._set_axes_message(f"{sizes}: guessed from {guess.source}."
                                   f"{LOST_SCALE if lost else ''} Check the letters "
                                   "(hover for what each means) or pick another reading:",
                                   ok=True, style=GUESS_STYLE)
        else:
            told = guess is not None and not guess.source.startswith("the shape")
            where = f" (from {guess.source})" if told else ""
            if lost:
                self._set_axes_message(f"✓ {sizes}{where}.{LOST_SCALE}", ok=True,
                                       style=GUESS_STYLE)
            else:
                self._set_axes_message(f"✓ {sizes}{where}", ok=True)
        self.axes_message.setToolTip(letter_help(info.axes, info.shape))

    def _show_alternatives(self, guess: AxesGuess | None) -> None:
        readings = guess.alternatives if guess is not None else []
        shape = data_shape(self.selected_layer()) if self.selected_layer() is not None else ()
        for button, reading in zip(self.alternative_buttons, [*readings, "", "", ""]):
            button.setText(reading)
            button.setToolTip(letter_help(reading, shape) if reading else "")
            button.setVisible(bool(reading))

    def _set_axes_message(self, text: str, ok: bool, style: str | None = None) -> None:
        self._axes_ok = ok
        self._problem = "" if ok else text
        self.axes_message.setText(text)
        self.axes_message.setStyleSheet(style if style is not None else
                                        (OK_STYLE if ok else ERROR_STYLE))
        if not ok:
            self.axes_message.setToolTip("")

    # ------------------------------------------------------------------- several layers
    def _on_several_toggled(self, checked: bool) -> None:
        self.more_list.setVisible(checked)
        self._publish()

    def _on_more_changed(self, item: QListWidgetItem) -> None:
        self._publish()

    def _candidates(self) -> list[Any]:
        """Image layers besides the chosen one that the axes fit, with as many channels."""
        layer = self.selected_layer()
        if layer is None or not getattr(self, "_axes_ok", False):
            return []
        axes = self.axes_edit.text()
        channels = check_axes(layer, axes, training=True).n_channels
        found = []
        for other in self._layers:
            if other == layer:
                continue
            try:
                info = check_axes(other, axes, training=True)
            except LayerChoiceError:
                continue
            if info.n_channels == channels and \
                    bool(getattr(other, "rgb", False)) == bool(getattr(layer, "rgb", False)):
                found.append(other)
        return found

    def _refresh_more(self) -> None:
        """List the candidate layers, keeping the ticks of those listed before."""
        ticked = set(map(id, self._ticked()))
        self._more = self._candidates()
        self.more_list.blockSignals(True)
        self.more_list.clear()
        for other in self._more:
            item = QListWidgetItem(other.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if id(other) in ticked
                               else Qt.CheckState.Unchecked)
            self.more_list.addItem(item)
        if not self._more:
            self.more_list.addItem("(no other image layer with these axes)")
        self.more_list.blockSignals(False)

    def _ticked(self) -> list[Any]:
        return [other for i, other in enumerate(self._more)
                if self.more_list.item(i) is not None and
                self.more_list.item(i).checkState() == Qt.CheckState.Checked]

    def more_layers(self) -> list[Any]:
        """The ticked further layers (none unless "Train on several layers" is on)."""
        return self._ticked() if self.several.isChecked() else []

    def set_more_layers(self, names: list[str]) -> None:
        """Tick these further layers (by name) and turn "Train on several layers" on."""
        self.several.setChecked(True)
        for i, other in enumerate(self._more):
            self.more_list.item(i).setCheckState(
                Qt.CheckState.Checked if other.name in names else Qt.CheckState.Unchecked)
        self._publish()

    def _publish(self) -> None:
        if not hasattr(self, "several"):
            return  # still being built
        self._refresh_more()
        self.state.set_choice(self.selected_layer(), self.axes_edit.text(),
                              getattr(self, "_axes_ok", False), self.more_layers(),
                              problem=self._problem)
