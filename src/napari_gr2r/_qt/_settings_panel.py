"""The settings panel: preset, device, preview interval, and the advanced training settings."""

from __future__ import annotations

from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QSpinBox, QVBoxLayout, QWidget
from superqt import QCollapsible

from napari_gr2r import engine

from ._state import Panel, WidgetState


class SettingsPanel(Panel):
    """The training configuration the user chose; serves it as the state's ``settings``.

    Choosing a preset fills the advanced settings with the preset's values; loading a model
    shows its network's width and depth.
    """

    def __init__(self, state: WidgetState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        self.form = form
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
        self._on_preset_changed(self.preset.currentText())
        state.model_loaded.connect(self._on_model_loaded)

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

    def _on_preset_changed(self, preset: str) -> None:
        cfg = engine.TrainConfig.from_preset(preset)
        self.steps.setValue(cfg.steps)
        self.batch.setValue(cfg.batch_size)
        self.patch.setValue(cfg.patch_size)
        self.patch_z.setValue(cfg.patch_size_z)
        self.lr.setValue(cfg.lr)
        self.width.setValue(cfg.width)
        self.depth.setValue(cfg.depth)

    def _on_model_loaded(self, model: engine.GR2RModel) -> None:
        self.width.setValue(model.config.width)
        self.depth.setValue(model.config.depth)

    # ------------------------------------------------------------ the state's TrainingSettings
    def config(self) -> engine.TrainConfig:
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

    def device_id(self) -> str:
        return str(self.device.currentData())

    def preview_interval(self) -> int:
        return self.preview_every.value()


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
