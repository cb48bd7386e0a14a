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
    QWidget,
)

from ._layers import LayerChoiceError, check_axes, guess_layer_axes, is_image_layer
from ._state import ERROR_STYLE, OK_STYLE, Panel, WidgetState


class DataPanel(Panel):
    """The image layer (image layers only, kept while renamed or moved) and its axes.

    The axes are guessed from the layer when it is chosen and checked as they are typed; the
    choice is published on the state (:meth:`WidgetState.set_choice`).
    """

    def __init__(self, state: WidgetState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        self._layers: list[Any] = []
        self._axes_layer: Any = None
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
        form.addRow("", self.axes_message)
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
        self.refresh_layers()

    # ---------------------------------------------------------------------------- the viewer
    def connect_viewer(self) -> None:
        layers = self.viewer.layers
        layers.events.inserted.connect(self._on_layers_inserted)
        layers.events.removed.connect(self._on_layers_changed)
        layers.events.moved.connect(self._on_layers_changed)
        for layer in layers:
            layer.events.name.connect(self._on_layers_changed)

    def disconnect_viewer(self) -> None:
        layers = self.viewer.layers
        for emitter, callback in (
            (layers.events.inserted, self._on_layers_inserted),
            (layers.events.removed, self._on_layers_changed),
            (layers.events.moved, self._on_layers_changed),
        ):
            emitter.disconnect(callback)
        for layer in layers:
            layer.events.name.disconnect(self._on_layers_changed)

    def _on_layers_inserted(self, event: Any) -> None:
        event.value.events.name.connect(self._on_layers_changed)
        self.refresh_layers()

    def _on_layers_changed(self, event: Any = None) -> None:
        self.refresh_layers()

    # ------------------------------------------------------------------------------- the choice
    def refresh_layers(self) -> None:
        """List the viewer's image layers, keeping the current choice when it is still there."""
        current = self.selected_layer()
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
        if self._layers and self._layers[index] is not self._axes_layer:
            self._on_layer_changed(index)
        elif not self._layers:
            self._axes_layer = None
            self.axes_edit.clear()
        self._publish()

    def selected_layer(self) -> Any:
        index = self.layer_combo.currentIndex()
        if 0 <= index < len(self._layers) and self._layers[index] in self.viewer.layers:
            return self._layers[index]
        return None

    def _on_layer_changed(self, index: int) -> None:
        layer = self.selected_layer()
        self._axes_layer = layer
        if layer is not None:
            self.axes_edit.setText(guess_layer_axes(layer))
        self._on_axes_changed()

    def _on_axes_changed(self, text: str | None = None) -> None:
        layer = self.selected_layer()
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
        self._publish()

    def _set_axes_message(self, text: str, ok: bool) -> None:
        self._axes_ok = ok
        self.axes_message.setText(text)
        self.axes_message.setStyleSheet(OK_STYLE if ok else ERROR_STYLE)

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
            if other is layer:
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
                              getattr(self, "_axes_ok", False), self.more_layers())
