"""Plain-type configuration of training: method, network, patches, optimiser.

Everything here is a dataclass of ints, floats, strings and tuples so that it can be stored
in a checkpoint and loaded with ``torch.load(weights_only=True)``.
This module is longer than 400 lines because :class:`TrainConfig` documents and checks every
setting of every section in one place (the keywords users write).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .checks import check_bool, check_float, check_int
from .errors import ConfigError

METHODS = ("gr2r", "gr2r-paper", "r2r", "n2c")
"""Training objectives; see :mod:`napari_gr2r.engine.training.losses`."""

PRESETS = ("fast", "balanced", "quality")
"""Network and budget presets: a laptop CPU (``fast``), a workstation, a GPU (``quality``)."""

NOISE_MODELS = ("gaussian", "poisson-gaussian")
GENERATED_NOISES = ("residual", "model")

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""Arithmetic of the network's passes: ``auto`` is fp32 on a CPU (or Apple MPS) and bf16 on a
CUDA GPU that supports it (else fp32); see :func:`napari_gr2r.engine.devices.resolve_precision`."""

STARTS = ("scratch", "prior")
"""Where a new network's weights start: random (``scratch``) or the pretrained prior of the
``fast`` network (``prior``; :mod:`napari_gr2r.engine.model.prior`)."""

LR_SCALINGS = ("none", "sqrt", "linear")
"""How the learning rate grows with the number of training processes (see
:func:`napari_gr2r.engine.training.distributed.lr_scale`)."""

MAX_MEMBERS = 16
"""The most networks of an ensemble (``TrainConfig.members``)."""

MAX_CONTEXT = 8
"""The most neighbouring planes on each side (``TrainConfig.context``)."""

# Method defaults for (gamma, lambda_g). "gr2r-paper" is equation 14 of the paper with its
# best gamma (Table 3); "gr2r" drops the regular term, which pulls straight to identity.
_METHOD_WEIGHTS = {"gr2r": (1.0, 0.0), "gr2r-paper": (2.0, 1.0), "r2r": (0.0, 0.0),
                   "n2c": (0.0, 0.0)}

GR2R_ALPHA = 1.0
"""The default ``alpha`` of both GR2R methods: the paper's pair ``y +- n`` (see :class:`TrainConfig`;
why it stays at 1: docs/method-notes.md)."""

_FAST = dict(width=16, depth=2, patch_size=48, patch_size_z=16, batch_size=8, steps=620, lr=2e-3,
             prior_lr=2e-4)
_PRESET_VALUES: dict[str, dict[str, Any]] = {
    # both denoise with the mean over the eight flips and quarter turns (``tta``), for little
    # time against their training (docs/method-notes.md, "Test-time flips")
    # both keep their input's brightness (training/mean_shift.py; docs/method-notes.md)
    "fast": dict(_FAST, start="prior", tta=8, keep_mean=True),
    # four of fast's networks, each from its own pretrained prior (model/prior.py)
    "balanced": dict(_FAST, members=4, start="prior", tta=8, keep_mean=True),
    "quality": dict(width=48, depth=4, patch_size=96, patch_size_z=32, batch_size=10, steps=20000,
                    lr=3e-4),
}
# short runs need a larger step size than the paper's 3e-4 (docs/method-notes.md)

_PRESET_GR2R_GAMMA: dict[str, float] = {"fast": 0.0, "balanced": 0.0}
"""``gamma`` of the ``gr2r`` method per preset where it differs from the method's default.
``fast`` trains without the pseudo-supervised term: a step is then two network passes instead of
three, and in ``fast``'s time the run makes 620 steps instead of 400, which denoised better than
the term did (docs/method-notes.md, "The γ term"); ``balanced`` is four of ``fast``'s networks."""


def _check_views(value: Any) -> int:
    """``TrainConfig.tta``: 1, 2, 4 or 8 views, or a :class:`ConfigError`."""
    if isinstance(value, bool) or value not in (1, 2, 4, 8):
        raise ConfigError(f"tta must be 1, 2, 4 or 8 (the views averaged when denoising), "
                          f"not {value!r}.")
    return int(value)


SLICE_PRESETS = ("fast", "balanced")
"""Presets whose ``net_dims="auto"`` trains a 2D network over a Z stack's slices: their small
network was developed and measured in 2D (``net_dims="3d"`` still trains a 3D one)."""


@dataclass
class ObjectiveConfig:
    """What the network learns: the method, its weights and, for ``r2r``, the known noise."""

    method: str = "gr2r"
    gamma: float | None = None
    lambda_g: float | None = None
    pin_noise: bool | None = None
    alpha: float | None = None
    noise_scale: float = 1.0
    generated_noise: str = "residual"
    noise_model: str = "gaussian"
    noise_sigma: float | None = None
    noise_gain: float | None = None
    noise_offset: float = 0.0
    r2r_alpha: float = 0.5


@dataclass
class NetworkConfig:
    """The U-Net: width, depth, residual learning, 2D or 3D, and the planes it sees."""

    width: int = _FAST["width"]  # a section given whole: fast's values
    depth: int = _FAST["depth"]
    residual: bool = False
    net_dims: str = "auto"
    context: int | str = 0
    members: int = 1  # one network: what model files written before ensembles hold
    start: str = "scratch"  # random weights: what model files written before the prior hold


@dataclass
class PatchConfig:
    """The patches each step trains on, and the share of the data held out for validation."""

    batch_size: int = _FAST["batch_size"]  # a section given whole: fast's values
    patch_size: int = _FAST["patch_size"]
    patch_size_z: int = _FAST["patch_size_z"]
    augment: bool = True
    val_fraction: float = 0.1


@dataclass
class OptimiserConfig:
    """Adam's learning-rate schedule and the optional moving average of the weights."""

    lr: float = _FAST["lr"]  # a section given whole: fast's value
    prior_lr: float = _FAST["prior_lr"]
    lr_min_factor: float = 0.05
    warmup_steps: int = 50
    ema_decay: float | None = None
    lr_scaling: str = "none"


@dataclass
class RunConfig:
    """The run: its length, seed, how often it validates, reports and checkpoints."""

    steps: int = _FAST["steps"]  # a section given whole: fast's value
    seed: int | None = 0
    val_every: int = 50
    event_every: int = 10
    collapse_fraction: float = 0.3
    checkpoint_every: int | None = None
    precision: str = "auto"
    compile: bool = False
    tta: int = 1  # one pass: what model files written before test-time flips hold
    keep_mean: bool = False  # the output as trained: what model files written before it hold
    hot_pixels: bool = True


SECTIONS: dict[str, type] = {"objective": ObjectiveConfig, "network": NetworkConfig,
                             "patches": PatchConfig, "optimiser": OptimiserConfig,
                             "run": RunConfig}
"""The sections of :class:`TrainConfig`, by attribute name."""
SECTION_OF: dict[str, str] = {f.name: name for name, kind in SECTIONS.items()
                              for f in dataclasses.fields(kind)}
"""The section each setting belongs to, by the setting's name."""


@dataclass(init=False)
class TrainConfig:
    """How to train a denoiser.

    ``TrainConfig(preset, **settings)`` is the preset's values (``"balanced"`` unless given,
    see :meth:`from_preset`) with the settings given changed: ``TrainConfig()`` is the
    ``balanced`` preset of the ``gr2r`` method, ``TrainConfig("fast", steps=1000)`` the same
    as ``TrainConfig.from_preset("fast", steps=1000)``. A whole section given (``network=``)
    replaces the preset's values in it.

    The settings come in sections, plain dataclasses: ``objective`` (:class:`ObjectiveConfig`),
    ``network`` (:class:`NetworkConfig`), ``patches`` (:class:`PatchConfig`), ``optimiser``
    (:class:`OptimiserConfig`) and ``run`` (:class:`RunConfig`). Every setting is also a
    keyword of ``TrainConfig(...)`` and an attribute of the config by its own name
    (``TrainConfig(width=16).width``, the same as ``.network.width``).

    Parameters
    ----------
    method : str
        ``"gr2r"`` (default): generative recorrupted-to-recorrupted with the generated noise
        pinned to a noise level estimated before training, so it cannot collapse onto the noisy
        input. ``"gr2r-paper"``: the paper's equation 14 with its weights (lambda_g = 1,
        gamma = 2), faithfully; it can collapse, which training detects and reports.
        ``"r2r"``: recorrupted-to-recorrupted with a known noise model (``noise_model``,
        ``noise_sigma``, ``noise_gain``). ``"n2c"``: supervised, needs a clean target.
    preset : str
        The preset the network and budget came from (informative; see :meth:`from_preset`).
    steps : int
        Optimiser steps.
    batch_size, patch_size, patch_size_z : int
        Patches per step and their size in YX (and Z for a 3D network).
    lr, lr_min_factor, warmup_steps : float, float, int
        Peak learning rate of Adam; a linear warm-up over ``warmup_steps`` (at most a tenth of
        the run), then cosine decay to ``lr * lr_min_factor``.
    prior_lr : float
        The peak learning rate of a run whose network starts from the prior (``start``):
        adapting pretrained weights wants smaller steps than learning from random ones.
    lr_scaling : str
        With N training processes (torchrun), each step averages N batches: the learning
        rate is ``lr`` (``"none"``, the default: scaling did not measure better, see
        docs/cluster-training.md), ``lr`` times sqrt(N) (``"sqrt"``) or times N
        (``"linear"``). One process: ``lr``.
    gamma, lambda_g : float or None
        Weights of the pseudo-supervised and regular terms; None takes the method's default
        (for ``gr2r``: gamma 1, but 0 with the ``fast`` preset, see :meth:`from_preset`).
    pin_noise : bool or None
        Rescale the generated noise to the estimated noise level (None: True for ``gr2r``).
    alpha : float or None
        Split of the generated noise ``n`` in GR2R's recorrupted pair: input ``y + alpha n``,
        target ``y - n / alpha`` (None: the paper's 1, :data:`GR2R_ALPHA`). Smaller values
        train the network at a noise level closer to the real one (``1 + alpha^2`` times it)
        with noisier targets.
    noise_scale : float
        GR2R's generated noise (pinned to the noise level: ``pin_noise``) at this many times
        the noise model's variance (default 1). Below 1 the recorrupted target keeps a share
        of the input's noise, so the network smooths less than R2R's pair of twice the noise
        variance makes it; for measuring (``python -m benchmarks.realnoise_levers --set
        noise_scale=0.9``), not a tuned default.
    generated_noise : {"residual", "model"}
        What GR2R's generated noise ``n`` is drawn from: ``"residual"`` (the default, GR2R's
        own) the network's residual ``y - f(y)`` with random signs, pinned to the noise level,
        which keeps the real noise's shape; ``"model"`` Gaussian noise of the fitted (or
        calibrated) noise level at each pixel, correlated like it, as R2R with an estimated
        noise model would draw it (docs/method-notes.md, `generated_noise`).
    width, depth : int
        U-Net channels at the first level and number of down-samplings.
    residual : bool
        Add the input to the network's output (residual learning).
    net_dims : str
        ``"auto"`` (3D network when the data has a Z axis deep enough, except with the ``fast``
        preset; else 2D), ``"2d"`` or
        ``"3d"``. A 2D network on a Z stack is trained and applied slice by slice.
    start : {"scratch", "prior"}
        Where a new network's weights start: random (``"scratch"``, the default of the
        ``balanced`` and ``quality`` presets) or the ``fast`` network pretrained on generated
        fluorescence-like images with known noise (``"prior"``, the ``fast`` preset's default:
        :mod:`napari_gr2r.engine.model.prior`), which training then adapts to the image with
        its own objective at ``prior_lr``. The prior fits a 2D network of ``fast``'s width and
        depth on one channel without ``context`` or ``residual``; any other network starts
        from scratch at ``lr`` (the model's config then says ``"scratch"``).
    members : int
        Networks trained side by side, each from its own random weights on its own patches
        (``batch_size`` each), the denoiser being their mean
        (:class:`~napari_gr2r.engine.model.networks.Ensemble`): a step costs ``members`` times
        as much, and the mean's squared error is at most the members' average. 1 (default):
        one network.
    context : int or "auto"
        Neighbouring planes on each side that the (2D) network sees with the plane it
        denoises, stacked as input channels: along T for a time-lapse, along Z for a Z stack
        (see :mod:`napari_gr2r.engine.data.context`). 0 (default): each plane alone.
        ``"auto"``: chosen from how much neighbouring planes share (0 for unrelated planes, up
        to 3 for repeated captures of a still field), measured on the data when training
        starts (:mod:`napari_gr2r.engine.data.redundancy`); the model records the number.
    val_fraction : float
        Fraction of the data held out for the validation loss (0 disables validation).
    val_every, event_every : int
        Steps between validations and between progress events.
    seed : int or None
        Seed of every random draw; runs with the same seed are identical on the CPU.
    noise_model, noise_sigma, noise_gain, noise_offset, r2r_alpha : for ``method="r2r"``
        Noise of the input in its own intensity units: Gaussian with standard deviation
        ``noise_sigma``, or Poisson-Gaussian with variance
        ``noise_gain * (value - noise_offset) + noise_sigma**2`` (``noise_offset``: the camera's
        dark level).
    augment : bool
        Random flips and 90-degree rotations of the training patches in YX (and flips in Z).
    collapse_fraction : float
        Collapse is reported when the residual energy falls below this fraction of the
        estimated noise variance.
    checkpoint_every : int or None
        With ``Trainer(..., checkpoint_path=...)``: write the checkpoint every this many steps;
        None (default) every two minutes of training
        (:data:`~napari_gr2r.engine.training.resume.CHECKPOINT_INTERVAL_S`), because a step costs from
        milliseconds to seconds depending on the preset and the device; 0 only at the end.
    precision : str
        ``"auto"`` (default: fp32 on a CPU, bf16 on a CUDA GPU that supports it), ``"fp32"``,
        ``"bf16"`` or ``"fp16"`` (a CUDA GPU only, with a gradient scaler): the arithmetic
        of training's and denoising's network passes (autocast); the weights stay fp32.
    tta : int
        How the model denoises by default: the mean of the network over this many flips and
        quarter turns of each tile (1, 2, 4 or 8; ``denoise(..., tta=)`` and ``--tta``
        override it), for as many times the work of one pass. ``fast`` and ``balanced``: 8;
        ``quality``: 1.
    keep_mean : bool
        End the run by shifting each network's output, per channel, by the mean of what it
        took from its input on the held-out patches and on 64 patches drawn from the training
        data, so that the denoised image keeps the input's brightness
        (:mod:`napari_gr2r.engine.training.mean_shift`: a network adapted from the pretrained
        prior can otherwise brighten or darken an image by a few per cent). Not for ``n2c``,
        whose target sets the brightness; without held-out patches (``val_fraction=0``), on the
        drawn ones alone. ``fast`` and ``balanced``: True (measured on real captures:
        docs/method-notes.md); False (default): the output as trained.
    hot_pixels : bool
        Replace isolated pixels far above or below all their neighbours (a camera's hot and
        dead pixels, cosmic rays: single pixels that the optics' point-spread function would
        have spread) by the median of their neighbours wherever the image is read, for
        training, denoising and the error estimate alike
        (:mod:`napari_gr2r.engine.io.hotpixels`): a network turns such a pixel into a blurred
        spot that looks like a real particle. True (default); False: the image as it is (an
        image sampled so coarsely that a real spot fits in one pixel).
    compile : bool
        Compile the network with ``torch.compile`` for training (off by default); where
        compiling fails, training says so in one line and runs without it.
    ema_decay : float or None
        Validate, keep and return an exponential moving average of the weights with this
        decay per step (see :mod:`napari_gr2r.engine.training.averaging`); None (default): the
        weights as trained. It did not help on the real captures used for development (the
        README's real-noise levers, ``python -m benchmarks.realnoise_levers``), so it is off.
    """

    preset: str
    objective: ObjectiveConfig
    network: NetworkConfig
    patches: PatchConfig
    optimiser: OptimiserConfig
    run: RunConfig

    def __init__(self, preset: str = "balanced", *, objective: ObjectiveConfig | None = None,
                 network: NetworkConfig | None = None, patches: PatchConfig | None = None,
                 optimiser: OptimiserConfig | None = None, run: RunConfig | None = None,
                 **settings: Any) -> None:
        unknown = sorted(set(settings) - set(SECTION_OF))
        if unknown:
            raise TypeError(f"TrainConfig got unknown setting(s) {', '.join(unknown)}")
        object.__setattr__(self, "preset", preset)
        given = {"objective": objective, "network": network, "patches": patches,
                 "optimiser": optimiser, "run": run}
        if settings.get("gamma", 0) is None:
            del settings["gamma"]  # None: the preset's (or the method's) gamma
        settings = {**self._preset_settings(preset, given, settings), **settings}
        for name, kind in SECTIONS.items():
            section = given[name]
            if section is None:
                section = kind()
            elif not isinstance(section, kind):
                raise ConfigError(f"{name}= takes a {kind.__name__}, not "
                                  f"{type(section).__name__}.")
            object.__setattr__(self, name, dataclasses.replace(section))  # a copy of its own
        for key, value in settings.items():
            setattr(self, key, value)
        self.validate()

    @staticmethod
    def _preset_settings(preset: str, given: dict[str, Any], settings: dict[str, Any]
                         ) -> dict[str, Any]:
        """The preset's values for the sections not given whole, and its ``gamma`` for the
        ``gr2r`` method where ``gamma`` is None and the objective is not given."""
        values = {k: v for k, v in _PRESET_VALUES.get(preset, {}).items()
                  if given[SECTION_OF[k]] is None}
        if (given["objective"] is None and settings.get("gamma") is None
                and settings.get("method", "gr2r") == "gr2r"):
            values["gamma"] = _PRESET_GR2R_GAMMA.get(preset)
        return values

    def __getattr__(self, name: str) -> Any:
        section = SECTION_OF.get(name)
        if section is not None and section in self.__dict__:
            return getattr(self.__dict__[section], name)
        raise AttributeError(f"'TrainConfig' object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        section = SECTION_OF.get(name)
        if section is not None:
            setattr(self.__dict__[section], name, value)
        else:
            object.__setattr__(self, name, value)

    def flat(self) -> dict[str, Any]:
        """Every setting by its own name (``preset`` too): the keywords of ``TrainConfig``."""
        values: dict[str, Any] = {"preset": self.preset}
        for name in SECTIONS:
            values.update(dataclasses.asdict(getattr(self, name)))
        return values

    @classmethod
    def from_preset(cls, preset: str = "balanced", **overrides: Any) -> TrainConfig:
        """Build a config from a preset and override single fields.

        ``"fast"``: a laptop CPU. U-Net width 16, depth 2 (118k parameters), 48 x 48 patches
        (16 slices deep for a 3D network), 8 per step, 620 steps at a learning rate of 2e-3;
        a Z stack trains a 2D network over its slices. The network starts from a prior
        pretrained on generated images (``start="prior"``) and adapts to the image at a
        learning rate of 2e-4 (``prior_lr``). With the ``gr2r`` method it leaves out
        the pseudo-supervised term (``gamma=0``) unless ``gamma`` is given: each step costs
        two network passes instead of three, so the 620 steps take the time 400 would. It
        denoises with the mean over the eight flips and quarter turns of each tile
        (``tta=8``).

        ``"balanced"`` (the default): a workstation, or a few minutes of a laptop. An ensemble
        of four ``fast`` networks (``members=4``, 472k parameters in all), each starting from
        its own pretrained prior (four priors of the same network, each trained on its own
        generated scenes, so that the members' errors differ) and trained on its own 8
        patches per step, with the ``fast`` preset's steps, learning rate and objective; it
        denoises with their mean, and a Z stack trains 2D networks over its slices. Per step and
        per run 4x the ``fast`` preset's work.

        ``"quality"``: a GPU. Width 48, depth 4 (4.4M parameters as 2D, 13M as 3D), 96 x 96
        patches (x 32 slices), 10 per step, 20,000 steps at the paper's 3e-4. Per step 107x the
        ``fast`` preset's work as 2D (the run: 3500x) and 5700x as 3D.

        The work ratios are counted operations of a ``gr2r`` training step, every network pass
        its loss makes, forward and backward (``python -m benchmarks.preset_cost``, checked by
        the tests); time on one device scales with them, and the times measured are in
        docs/method-notes.md.

        Parameters
        ----------
        preset : str
            ``"fast"``, ``"balanced"`` or ``"quality"``.
        **overrides
            Any other field of :class:`TrainConfig`, e.g. ``steps=1000``, ``method="r2r"``.

        Examples
        --------
        >>> TrainConfig.from_preset("fast", steps=1000).width
        16
        """
        if preset not in PRESETS:
            raise ConfigError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
        names = set(SECTION_OF) | set(SECTIONS)
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(
                f"Unknown setting(s) {', '.join(unknown)}; the settings of TrainConfig are "
                f"{', '.join(sorted(['preset', *SECTION_OF]))}."
            )
        return cls(preset, **overrides)

    def validate(self) -> None:
        """Raise :class:`ConfigError` with a helpful message when a field is out of range."""
        if self.method not in METHODS:
            raise ConfigError(f"Unknown method {self.method!r}; choose one of {', '.join(METHODS)}.")
        if self.preset not in PRESETS:
            raise ConfigError(f"Unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}.")
        if self.net_dims not in ("auto", "2d", "3d"):
            raise ConfigError(f"net_dims must be 'auto', '2d' or '3d', not {self.net_dims!r}.")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, not "
                              f"{self.precision!r}.")
        for name in ("compile", "keep_mean", "hot_pixels", "residual", "augment"):
            setattr(self, name, check_bool(name, getattr(self, name)))
        self.tta = _check_views(self.tta)
        if self.lr_scaling not in LR_SCALINGS:
            raise ConfigError(f"lr_scaling must be one of {', '.join(LR_SCALINGS)}, not "
                              f"{self.lr_scaling!r}.")
        if self.generated_noise not in GENERATED_NOISES:
            raise ConfigError(f"generated_noise must be one of {', '.join(GENERATED_NOISES)}, "
                              f"not {self.generated_noise!r}.")
        if self.start not in STARTS:
            raise ConfigError(f"start must be one of {', '.join(STARTS)}, not {self.start!r}.")
        if self.noise_model not in NOISE_MODELS:
            raise ConfigError(f"noise_model must be one of {', '.join(NOISE_MODELS)}, not "
                              f"{self.noise_model!r}.")
        ints = {"steps": (1, None), "batch_size": (1, None), "patch_size": (8, None),
                "patch_size_z": (1, None), "width": (1, None), "depth": (1, 6),
                "val_every": (1, None), "event_every": (1, None), "warmup_steps": (0, None),
                "members": (1, MAX_MEMBERS)}
        for name, (low, high) in ints.items():
            setattr(self, name, check_int(name, getattr(self, name), low, high))
        if self.seed is not None:
            self.seed = check_int("seed", self.seed, 0, 2**63 - 1,
                                  what="None, or a whole number from 0")
        self.lr, self.prior_lr = (check_float(name, getattr(self, name), 0, 1, low_open=True,
                                              high_open=True) for name in ("lr", "prior_lr"))
        self.lr_min_factor = check_float("lr_min_factor", self.lr_min_factor, 0, 1)
        self.val_fraction = check_float("val_fraction", self.val_fraction, 0, 0.5,
                                        high_open=True)
        if self.checkpoint_every is not None:
            self.checkpoint_every = check_int(
                "checkpoint_every", self.checkpoint_every, 0,
                what="steps between checkpoints; 0: only at the end; None: every two minutes")
        optional: dict[str, dict[str, Any]] = {  # None, or a number in range
            "gamma": dict(low=0, what="zero or positive, or None"),
            "lambda_g": dict(low=0, what="zero or positive, or None"),
            "alpha": dict(low=0, high=1, low_open=True, what="the split of GR2R's generated noise"),
            "ema_decay": dict(low=0, high=1, high_open=True,
                              what="the moving average's decay per step, or None"),
            "noise_sigma": dict(low=0, what="the Gaussian noise's standard deviation"),
            "noise_gain": dict(low=0, low_open=True, what="the Poisson gain")}
        for name, limits in optional.items():
            if getattr(self, name) is not None:
                setattr(self, name, check_float(name, getattr(self, name), **limits))
        self.r2r_alpha = check_float("r2r_alpha", self.r2r_alpha, 0, 1, low_open=True,
                                     high_open=True)
        self.noise_scale = check_float("noise_scale", self.noise_scale, 0, 2, low_open=True,
                                       what="the generated noise's variance over the model's")
        self.collapse_fraction = check_float("collapse_fraction", self.collapse_fraction, 0)
        self.noise_offset = check_float("noise_offset", self.noise_offset)
        self.pin_noise = check_bool("pin_noise", self.pin_noise, allow_none=True)
        if self.context != "auto":
            self.context = check_int("context", self.context, 0, MAX_CONTEXT,
                                     what="neighbouring planes on each side, 0 for none, "
                                          "or 'auto'")
        if self.context and self.context != "auto" and self.net_dims == "3d":
            raise ConfigError(
                f"context={self.context} stacks neighbouring planes for a 2D network; use "
                "net_dims='2d' or 'auto' with it (a 3D network sees its Z neighbours already)."
            )
        if self.method == "r2r":
            if self.noise_sigma is None:
                raise ConfigError(
                    "method='r2r' needs the noise level: set noise_sigma (the Gaussian standard "
                    "deviation in the image's intensity units) and, for Poisson-Gaussian noise, "
                    "noise_model='poisson-gaussian' and noise_gain."
                )
            if self.noise_model == "poisson-gaussian" and not self.noise_gain:
                raise ConfigError("noise_model='poisson-gaussian' needs noise_gain > 0.")

    @property
    def resolved_gamma(self) -> float:
        return self.gamma if self.gamma is not None else _METHOD_WEIGHTS[self.method][0]

    @property
    def resolved_lambda_g(self) -> float:
        return self.lambda_g if self.lambda_g is not None else _METHOD_WEIGHTS[self.method][1]

    @property
    def resolved_alpha(self) -> float:
        return self.alpha if self.alpha is not None else GR2R_ALPHA

    @property
    def resolved_pin_noise(self) -> bool:
        return self.pin_noise if self.pin_noise is not None else self.method == "gr2r"

    @property
    def peak_lr(self) -> float:
        """The learning rate a run peaks at: ``prior_lr`` from the prior, else ``lr``."""
        return self.prior_lr if self.start == "prior" else self.lr

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some settings (or whole sections) changed, validated."""
        values: dict[str, Any] = {name: getattr(self, name) for name in SECTIONS}
        values["preset"] = self.preset
        values.update(changes)
        return type(self)(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain types by section: ``{"preset": ..., "objective": {...}, ...}``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict`, or from the flat form files written before the
        sections hold (a setting by its own name wins over its section's entry); keys a newer
        version may have added are ignored."""
        kwargs: dict[str, Any] = {}
        # every section is given, so a file keeps its own values and none of its preset's: a
        # setting it lacks takes the section's default (members=1, gamma=None)
        for name, kind in SECTIONS.items():
            part = values.get(name)
            part = part if isinstance(part, dict) else {}
            known = {f.name for f in dataclasses.fields(kind)}
            kwargs[name] = kind(**{k: v for k, v in part.items() if k in known})
        kwargs.update({k: v for k, v in values.items() if k in SECTION_OF})
        if "preset" in values:
            kwargs["preset"] = values["preset"]
        return cls(**kwargs)
