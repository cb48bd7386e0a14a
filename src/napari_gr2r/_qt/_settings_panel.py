"""The settings panel: preset, neighbouring planes, device, preview interval, and the advanced
training settings (precision and compilation among them)."""

from __future__ import annotations

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from napari_gr2r import engine
from napari_gr2r.engine.config import MAX_CONTEXT, MAX_MEMBERS, PRECISIONS

from ._state import Panel, WidgetState

METHOD_NAMES = {
    "gr2r": "Stable GR2R (recommended)",
    "gr2r-paper": "GR2R as published",
    "r2r": "R2R, known noise level",
}
"""The methods the widget offers (not the supervised one), in plain words."""

CONTEXT_AUTO = -1
"""The context spin box's value for ``context="auto"`` (shown as "auto")."""
CONTEXT_TEXT = ("Neighbouring planes the network sees on each side (time-lapses, Z stacks "
                "denoised plane by plane); 0 = off.")
HINT_STYLE = "color: #a0a0a0;"

PRECISION_NAMES = {
    "auto": "auto",
    "fp32": "fp32 (full)",
    "bf16": "bf16 (half memory)",
    "fp16": "fp16 (half memory, CUDA GPU)",
}
"""The precisions (``engine.config.PRECISIONS``) in plain words."""


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
        self.preset.setToolTip("How long and how large a training run is. fast: minutes on a "
                               "laptop CPU; balanced: four fast networks averaged, about four times "
                               "as long; quality: a GPU.")
        self.preset.currentTextChanged.connect(self._on_preset_changed)
        form.addRow("Preset", self.preset)
        self._build_context(form)
        self.device = QComboBox()
        self.device.addItem("auto", "auto")
        for device_id, label in engine.available_devices():
            self.device.addItem(label, device_id)
        self.device.setToolTip("Where the network trains and denoises. auto: a GPU if this "
                               "computer has one that PyTorch can use, else the CPU.")
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
        state.choice_changed.connect(self._update_context)
        self.net_dims.currentTextChanged.connect(self._update_context)
        self._update_context()

    def _build_context(self, form: QFormLayout) -> None:
        """Neighbouring planes as context (``TrainConfig.context``), and a line that says what
        it does on the chosen layer."""
        self.context = QSpinBox()
        self.context.setRange(CONTEXT_AUTO, MAX_CONTEXT)
        self.context.setSpecialValueText("auto")
        default = engine.TrainConfig().context
        self.context.setValue(CONTEXT_AUTO if default == "auto" else int(default))
        self.context.setSuffix(" each side")
        self.context.setToolTip(
            "The network denoises each plane together with this many planes before and after "
            "it: neighbouring time points of a time-lapse (T), or neighbouring slices of a Z "
            "stack denoised plane by plane. It helps where neighbouring planes show the same "
            "structures (repeated captures, thin sections, slow movement) and can cost a "
            "little where they are unrelated. 0: each plane alone (the default). auto: "
            "chosen from how much neighbouring planes share, measured when training starts.")
        form.addRow("Neighbouring planes", self.context)
        self.context_hint = QLabel(CONTEXT_TEXT)
        self.context_hint.setWordWrap(True)
        self.context_hint.setStyleSheet(HINT_STYLE)
        form.addRow(self.context_hint)

    def context_axis(self) -> str | None:
        """The axis the chosen layer's neighbouring planes lie along (as the engine picks it:
        T, else Z for a 2D network), or None when it has none."""
        axes = self.state.axes if self.state.axes_ok else ""
        if "T" in axes:
            return "T"
        if "Z" in axes and self.net_dims.currentText() != "3d":
            return "Z"
        return None

    def _update_context(self) -> None:
        axis = self.context_axis()
        self.context.setEnabled(axis is not None)
        axes = self.state.axes if self.state.axes_ok else ""
        if axis == "T":
            where = " Here: neighbouring time points (T)."
        elif axis == "Z":
            where = " Here: neighbouring Z slices, with a 2D network."
        elif "Z" in axes:
            where = (" Not with a 3D network, which sees its Z neighbours already: set "
                     "Network (Advanced) to auto or 2d.")
        elif axes:
            where = " Not here: this layer has no T or Z axis, a single plane."
        else:
            where = ""
        self.context_hint.setText(CONTEXT_TEXT + where)

    def _build_advanced(self) -> QWidget:
        box = QWidget()
        form = QFormLayout(box)
        # a narrow dock puts a long label over its field instead of pushing the dock wider
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.method = QComboBox()
        for method in engine.METHODS:
            if method in METHOD_NAMES:  # n2c is supervised: it needs a clean target
                self.method.addItem(METHOD_NAMES[method], method)
        self.method.setToolTip(
            "Stable GR2R (gr2r, recommended): learns the noise from the image itself, its "
            "generated noise held at the estimated noise level.\n"
            "GR2R as published (gr2r-paper): the paper's objective; it can collapse onto the "
            "noisy image, which training detects and reports.\n"
            "R2R with a known noise level (r2r): needs the noise level below."
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
        self.lr.setToolTip("How big a step each update takes; too high and training jumps "
                           "around, too low and it learns slowly.")
        self.gamma = _weight_spin()
        self.gamma.setToolTip(
            "How much the network is asked to give the same result when its own output gets "
            "fresh noise (the 'consistency' curve; γ in the paper). 'default': the method's "
            "(GR2R: 1, but 0 with the fast and balanced presets, whose steps are then cheaper).")
        form.addRow("Consistency weight", self.gamma)
        self.lambda_g = _weight_spin()
        self.lambda_g.setToolTip(
            "How much the result is pulled towards the noisy image (the 'stay close to the "
            "input' curve; λ_g in the paper). 'default': the method's.")
        form.addRow("Stay-close weight", self.lambda_g)
        self._build_network(form)
        self.noise_sigma = QDoubleSpinBox()
        self.noise_sigma.setDecimals(3)
        self.noise_sigma.setRange(0.0, 1e9)
        self.noise_sigma.setSpecialValueText("not set")
        self.noise_sigma.setToolTip(
            "For R2R only: how strong the noise is, as its standard deviation (σ) in the "
            "image's intensity units. The training message shows the estimate from the image."
        )
        form.addRow("Noise level (R2R)", self.noise_sigma)
        self.net_dims = QComboBox()
        self.net_dims.addItems(["auto", "2d", "3d"])
        self.net_dims.setToolTip("2d denoises each plane on its own; 3d also looks at the "
                                 "planes above and below. auto: 3d when the stack is deep "
                                 "enough, else 2d.")
        form.addRow("Network", self.net_dims)
        self.val_fraction = QDoubleSpinBox()
        self.val_fraction.setRange(0.0, 0.45)
        self.val_fraction.setSingleStep(0.05)
        self.val_fraction.setValue(0.1)
        self.val_fraction.setToolTip(
            "The share of the image kept out of training to check the network on and to keep "
            "its best weights (validation fraction). 0: keep the last weights.")
        form.addRow("Held out for checking", self.val_fraction)
        self._build_hot_pixels(form)
        self.seed = _int_spin(-1, 2**31 - 1, 1)
        self.seed.setSpecialValueText("random")
        self.seed.setValue(0)
        self.seed.setToolTip("The same number gives the same result when training again on the "
                             "same image and computer; 'random' gives a different run each time.")
        form.addRow("Seed", self.seed)
        self._build_precision(form)
        return box

    def _build_network(self, form: QFormLayout) -> None:
        """The network's width and depth, and how many networks (``TrainConfig.members``)."""
        self.width = _int_spin(2, 256, 4)
        form.addRow("Network width", self.width)
        self.depth = _int_spin(1, 6, 1)
        form.addRow("Network depth", self.depth)
        self.members = _int_spin(1, MAX_MEMBERS, 1)
        self.members.setToolTip(
            "Networks trained side by side, each on its own patches; the result is their "
            "average. Training takes this many times as long; the average is at least as "
            "good as the networks are on average, and one unlucky run no longer decides the "
            "result. 1: one network.")
        form.addRow("Networks (ensemble)", self.members)
        self.start_prior = QCheckBox("Start from the pretrained prior")
        self.start_prior.setToolTip(
            "Start the network from napari-gr2r's prior (trained beforehand on generated "
            "images with known noise) and adapt it to this image, at a smaller learning rate; "
            "off: start from random weights. An ensemble's networks start from four different "
            "priors. The fast and balanced presets' default; it fits one-channel 2D networks "
            "of width 16 and depth 2 only, any other starts from random weights.")
        self.start_prior.toggled.connect(self._on_start_changed)
        form.addRow("", self.start_prior)

    def _build_hot_pixels(self, form: QFormLayout) -> None:
        """Whether hot and dead pixels are replaced (``TrainConfig.hot_pixels``)."""
        self.hot_pixels = QCheckBox("Replace hot and dead pixels")
        self.hot_pixels.setChecked(engine.TrainConfig().hot_pixels)
        self.hot_pixels.setToolTip(
            "Replace isolated pixels far above or below all their neighbours (a camera's hot "
            "or dead pixels, cosmic rays) by the median of their neighbours before training and "
            "denoising, so that they do not come out as blurred spots. Off: keep every pixel, "
            "for images whose real features are single pixels.")
        form.addRow("", self.hot_pixels)

    def _on_start_changed(self, prior: bool) -> None:
        """The learning rate field shows the rate of the chosen start (the preset's)."""
        cfg = engine.TrainConfig.from_preset(self.preset.currentText())
        self.lr.setValue(cfg.prior_lr if prior else cfg.lr)

    def _build_precision(self, form: QFormLayout) -> None:
        """The arithmetic of the network's passes and torch.compile (``TrainConfig.precision``,
        ``TrainConfig.compile``)."""
        self.precision = QComboBox()
        for name in PRECISIONS:
            self.precision.addItem(PRECISION_NAMES.get(name, name), name)
        self.precision.setToolTip(
            "The arithmetic of the network's passes when training and denoising (the weights "
            "stay in full precision). auto (the default): fp32 on a CPU, bf16 on a CUDA GPU "
            "that supports it. bf16 and fp16 use half the memory and are faster on GPUs; fp16 needs a CUDA "
            "GPU (training refuses it on a CPU or Apple GPU and says what to use instead).")
        # as narrow as the other fields: the longer names show when the list opens
        self.precision.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.precision.setMinimumContentsLength(6)
        self.precision.setCurrentIndex(self.precision.findData(engine.TrainConfig().precision))
        form.addRow("Precision", self.precision)
        self.compile = QCheckBox("Compile the network (torch.compile)")
        self.compile.setChecked(bool(engine.TrainConfig().compile))
        self.compile.setToolTip(
            "Compile the network with torch.compile before training: the first steps take "
            "longer, the later ones can be faster, mostly on GPUs. Where compiling is not "
            "possible (no compiler, an unsupported device), training says so in one line and "
            "runs without it.")
        form.addRow("", self.compile)

    def _on_preset_changed(self, preset: str) -> None:
        cfg = engine.TrainConfig.from_preset(preset)
        self.steps.setValue(cfg.steps)
        self.batch.setValue(cfg.batch_size)
        self.patch.setValue(cfg.patch_size)
        self.patch_z.setValue(cfg.patch_size_z)
        self.width.setValue(cfg.width)
        self.depth.setValue(cfg.depth)
        self.members.setValue(cfg.members)
        self.start_prior.setChecked(cfg.start == "prior")
        self.lr.setValue(cfg.peak_lr)

    def _on_model_loaded(self, model: engine.GR2RModel) -> None:
        self.width.setValue(model.config.width)
        self.depth.setValue(model.config.depth)
        self.members.setValue(model.config.members)
        self.hot_pixels.setChecked(model.config.hot_pixels)
        self.set_context(model.config.context)  # continuing a model keeps its planes

    def set_context(self, context: int | str) -> None:
        """Show ``context`` (a number of planes, or ``"auto"``)."""
        self.context.setValue(CONTEXT_AUTO if context == "auto" else int(context))

    def context_value(self) -> int | str:
        """The neighbouring planes for the engine: a number, ``"auto"``, or 0 where the chosen
        layer has no planes around its planes."""
        if self.context_axis() is None:
            return 0
        value = self.context.value()
        return "auto" if value == CONTEXT_AUTO else value

    # ------------------------------------------------------------ the state's TrainingSettings
    def config(self) -> engine.TrainConfig:
        """The training configuration the widgets describe (raises ConfigError)."""
        gamma = self.gamma.value()
        lambda_g = self.lambda_g.value()
        prior = self.start_prior.isChecked()
        return engine.TrainConfig.from_preset(
            self.preset.currentText(),
            method=self.method_id(),
            steps=self.steps.value(),
            batch_size=self.batch.value(),
            patch_size=self.patch.value(),
            patch_size_z=self.patch_z.value(),
            start="prior" if prior else "scratch",
            **{"prior_lr" if prior else "lr": self.lr.value()},
            gamma=None if gamma < 0 else gamma,
            lambda_g=None if lambda_g < 0 else lambda_g,
            width=self.width.value(),
            depth=self.depth.value(),
            members=self.members.value(),
            net_dims=self.net_dims.currentText(),
            val_fraction=self.val_fraction.value(),
            seed=None if self.seed.value() < 0 else self.seed.value(),
            noise_sigma=self.noise_sigma.value() or None,
            context=self.context_value(),
            precision=str(self.precision.currentData()),
            compile=self.compile.isChecked(),
            hot_pixels=self.hot_pixels.isChecked(),
        )

    def method_id(self) -> str:
        """The chosen method's name in the engine (``"gr2r"``, ``"gr2r-paper"``, ``"r2r"``)."""
        return str(self.method.currentData())

    def set_method(self, method: str) -> None:
        """Choose a method by its engine name."""
        self.method.setCurrentIndex(self.method.findData(method))

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
