"""Everything a training run needs before its first step, for :class:`~.trainer.Trainer`.

:func:`prepare` checks the arguments, resolves a resumed run, fits the normalisation and the
noise (or takes them from the model being trained further), builds the network, and draws the
patch samplers and the held-out batches. The trainer then only loops.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import SLICE_PRESETS, TrainConfig
from ..data.collection import SourceSet, as_image_list
from ..data.context import context_images, stack_normalization
from ..data.normalization import Normalization
from ..data.patches import SamplingPlan, split_regions
from ..data.redundancy import suggest_context
from ..devices import resolve_device, resolve_precision, usable_device
from ..errors import ConfigError, InputError
from ..io.hotpixels import HotPixelRule
from ..model.model import GR2RModel
from ..model.networks import build_network, place
from ..model.prior import load_prior
from ..model.run import RunState
from ..noise.calibration import NoiseCalibration
from ..noise.correlation import CORRELATION_THRESHOLD
from ..noise.level import NoiseLevel
from ..noise.refit import VarianceCurve, refit
from .distributed import (
    SINGLE,
    ObjectiveStep,
    World,
    check_world_fits,
    data_parallel,
    join,
    seed_rank,
)
from .losses import Objective, build_objective, build_validation
from .resume import run_to_resume
from .validation import Validator

N_VAL_PATCHES = 16
RISK_PATCHES = 50_000
"""Patches the estimated PSNR's noise variance is refitted on (see :mod:`..noise.refit`)."""
NETWORK_FIELDS = ("width", "depth", "residual", "context")


def choose_dims(config: TrainConfig, nz: int) -> int:
    """2 or 3. In ``auto``, a 3D network when Z has at least ``2 ** (depth + 1)`` slices,
    except with the presets of :data:`~napari_gr2r.engine.config.SLICE_PRESETS` (``fast``'s
    network), which train a 2D network over slices (far cheaper on a CPU)."""
    if config.net_dims == "2d":
        return 2
    if config.net_dims == "3d":
        if nz < 4:
            raise InputError(
                f"A 3D network needs a Z axis with at least 4 slices; this image has {nz}. "
                "Use net_dims='2d' or 'auto'."
            )
        return 3
    if config.preset in SLICE_PRESETS or config.context:
        return 2  # slice by slice: fast's network; context stacks planes for a 2D network
    return 3 if nz >= 2 ** (config.depth + 1) else 2


def check_arguments(config: TrainConfig | None, model: GR2RModel | None) -> TrainConfig:
    """The run's config (``model``'s own, or the default, when None), checked with ``model``."""
    if model is not None and not isinstance(model, GR2RModel):
        raise InputError(
            f"model= takes a GR2RModel to continue training, not {type(model).__name__}; "
            "load one with engine.load_model(path)."
        )
    if config is None:
        config = model.config if model is not None else TrainConfig()
    if not isinstance(config, TrainConfig):
        raise ConfigError(
            f"config must be a TrainConfig, not {type(config).__name__}; build one with "
            "TrainConfig(...) or TrainConfig.from_preset('fast', steps=...)."
        )
    config.validate()
    if model is not None and config.context == "auto":
        config = config.replace(context=model.config.context)  # the network's own planes
    if model is not None and any(getattr(config, f) != getattr(model.config, f)
                                 for f in NETWORK_FIELDS):
        raise ConfigError(
            f"The model's network has width {model.config.width}, depth "
            f"{model.config.depth}, residual={model.config.residual} and context "
            f"{model.config.context}; to continue "
            "training it, keep them (or train a new model)."
        )
    return config


def resolved_context(config: TrainConfig, images: SourceSet) -> TrainConfig:
    """``config`` with ``context="auto"`` replaced by the planes :func:`suggest_context`
    measures on ``images`` for the network ``config`` chooses without context."""
    if config.context != "auto":
        return config
    dims = choose_dims(config.replace(context=0), images.min_z)
    return config.replace(context=suggest_context(images, dims))


def training_images(data: Any, axes: str, config: TrainConfig, target: Any) -> SourceSet:
    """The images (one, or several with the same axes) and, for ``n2c``, their targets."""
    images = as_image_list(data)
    targets = None
    if config.method == "n2c":
        if target is None:
            raise InputError("method='n2c' is supervised: pass the clean image as target=.")
        targets = [target] if images is None else as_image_list(target)
        if targets is None:
            raise InputError("With several images, pass a list of clean targets (one per "
                             "image) as target=.")
    return SourceSet([data] if images is None else images, axes, targets)


def _generated(level: NoiseLevel) -> NoiseLevel:
    """The calibrated noise as training generates it: white where the calibration's
    correlation between neighbours stays below what a fit on the image would call correlated
    (a scanning microscope's weak correlation along its lines). The estimate of the error keeps
    that correlation; generating it made training no better on real captures
    (``benchmarks/results/calibrated.md``)."""
    if level.kernel is None:
        return level
    k = np.asarray(level.kernel, np.float64)
    strongest = max(np.sum(k[:, 1:] * k[:, :-1]), np.sum(k[1:, :] * k[:-1, :])) / np.sum(k * k)
    return level if strongest >= CORRELATION_THRESHOLD else dataclasses.replace(level, kernel=None)


@dataclass
class Statistics:
    """The intensity scaling, the noise level and the estimated PSNR's noise model."""

    norm: Normalization
    noise_level: NoiseLevel
    risk_noise: tuple[NoiseLevel, VarianceCurve | None]

    @classmethod
    def fit(cls, images: SourceSet, rng: np.random.Generator, seed: int | None,
            noise: NoiseCalibration | None = None) -> Statistics:
        blocks = images.statistics_blocks(rng)
        norm = Normalization.fit(blocks)
        if noise is not None:  # a calibration in the input's units: no fit
            level = noise.level(norm, blocks)
            return cls(norm, _generated(level), (level, noise.curve(norm)))
        blocks = [norm.apply(b) for b in blocks]
        noise_level = NoiseLevel.estimate(blocks, rng)
        # the estimated PSNR's noise model (its own generator: training's draws stay put)
        risk_noise = refit(noise_level, blocks, np.random.default_rng(seed),
                           max_patches=RISK_PATCHES)
        return cls(norm, noise_level, risk_noise)

    @classmethod
    def of(cls, model: GR2RModel) -> Statistics:
        return cls(model.normalization, model.noise_level, (model.noise_level, None))


@dataclass
class Setup:
    """What :func:`prepare` gives the trainer."""

    config: TrainConfig
    images: SourceSet
    model: GR2RModel
    stats: Statistics
    device: torch.device
    rng: np.random.Generator
    torch_seed: int
    sampler: Any
    val_batches: list[list[torch.Tensor]]
    val_seed: int
    objective: Objective
    validator: Validator
    resume: RunState | None = None
    run_start: int | None = None
    """None: a run of ``config.steps`` from the model's step."""
    resume_best: dict[str, torch.Tensor] | None = None
    """A resumed run's best weights so far (the model's own), while the network goes on from
    the run's current weights."""
    world: World = SINGLE
    precision: str = "fp32"
    """The resolved precision (``TrainConfig.precision`` on this device)."""
    train_step: torch.nn.Module | None = None
    """The objective on the (compiled, distributed) network: what each step calls."""


def new_model(images: SourceSet, config: TrainConfig, stats: Statistics) -> GR2RModel:
    """An untrained model for ``images`` (the network seeded by ``config.seed``)."""
    info = images.info
    dims = choose_dims(config, images.min_z)
    if config.seed is not None:
        torch.manual_seed(config.seed)
    net = build_network(dims, info.n_channels, config.width, config.depth, config.residual,
                        config.context, config.members)
    if config.start == "prior" and not load_prior(net):
        config = config.replace(start="scratch")  # the model says how its network started
    return GR2RModel(net=net, config=config, axes=info.axes, channels=info.n_channels,
                     dims=dims, normalization=stats.norm, noise_level=stats.noise_level,
                     data_shape=tuple(int(n) for n in info.shape))


def prepare(data: Any, axes: str, config: TrainConfig | None, *, target: Any = None,
            model: GR2RModel | None = None, device: str = "auto", resume: bool = False,
            distributed: bool | None = None, noise: NoiseCalibration | None = None) -> Setup:
    """Check, resolve, fit and build what a run needs (see the module's docstring)."""
    config = check_arguments(config, model)
    state, run_start = run_to_resume(model, config.steps) if resume else (None, None)
    images = training_images(data, axes, config, target)
    config = resolved_context(config, images)
    rng = np.random.default_rng(config.seed)
    torch_seed = int(rng.integers(2**31))
    torch_device = resolve_device(device)
    precision = resolve_precision(config.precision, torch_device)
    world = join(distributed, torch_device)
    torch_device = world.device(torch_device)
    model, stats, resume_best = _model_and_statistics(images, config, model, state, rng, world,
                                                      noise)
    config = model.config  # a new network's start resolved (the prior, or scratch)
    if config.hot_pixels:  # patches read from here on have them replaced
        rule = HotPixelRule.from_noise(stats.noise_level, stats.norm)
        for source in images.sources:
            source.hot_pixels = rule
    torch_device = usable_device(model.net, torch_device, model.dims, images.info.n_channels)
    place(model.net, torch_device)
    plan = SamplingPlan((config.patch_size_z, config.patch_size, config.patch_size),
                        flat_z=model.dims == 2, augment=config.augment,
                        batch_size=config.batch_size, val_fraction=config.val_fraction,
                        n_val=N_VAL_PATCHES)
    check_world_fits(training_patches(images, plan), world.size, plan.patch)
    if not world.is_main:
        seed_rank(rng, config.seed, world.rank, model.step)
    # with context, the patches carry their neighbouring planes as channels
    sampler, batches, val_seed = context_images(images, config.context, model.dims).samplers(
        stack_normalization(stats.norm, config.context), plan, rng,
        val_seed=state.val_seed if state is not None else None)
    val_batches = [[torch.from_numpy(a) for a in arrays] for arrays in batches]
    if not world.is_main:
        val_batches = []  # rank 0 validates and chooses the best weights
    objective = build_objective(config, stats.norm, stats.noise_level)
    validator = Validator(val_batches, build_validation(config, objective, stats.noise_level),
                          stats.risk_noise, torch_device, torch_seed + 7919)
    if state is not None:
        state.restore_rng(rng)  # after the samplers drew their pools
        if not world.is_main:
            seed_rank(rng, config.seed, world.rank, model.step)
    net = compiled(model.net, sampler, torch_device, precision) if config.compile else model.net
    train_step = data_parallel(ObjectiveStep(net, objective), world, torch_device)
    return Setup(config, images, model, stats, torch_device, rng, torch_seed, sampler,
                 val_batches, val_seed, objective, validator, state, run_start, resume_best,
                 world, precision, train_step)


def _model_and_statistics(images: SourceSet, config: TrainConfig, model: GR2RModel | None,
                          state: RunState | None, rng: np.random.Generator, world: World,
                          noise: NoiseCalibration | None = None,
                          ) -> tuple[GR2RModel, Statistics, dict[str, torch.Tensor] | None]:
    """The model to train (a new one, or ``model`` at the resumed run's current weights), its
    statistics (fitted on rank 0 and shared) and a resumed run's best weights."""
    resume_best = None
    if model is not None:
        for image_info in images.infos:
            model.check_compatible(image_info)
        model.config = config
        if state is not None:
            # the model's weights are the best so far; the run goes on from its current ones
            if model.best_val_loss is not None:
                resume_best = copy.deepcopy(model.net.state_dict())
            model.net.load_state_dict(state.weights)
        return model, Statistics.of(model), resume_best
    stats = world.broadcast(Statistics.fit(images, rng, config.seed, noise) if world.is_main
                            else None)
    return new_model(images, config, stats), stats, None


def training_patches(images: SourceSet, plan: SamplingPlan) -> int:
    """How many non-overlapping patches the training regions of ``images`` hold."""
    total = 0
    for source in images.sources:
        region = split_regions(source.info, plan.val_fraction, *plan.patch[1:])[0]
        nz = source.czyx[1]
        pz = 1 if plan.flat_z else min(plan.patch[0], nz)
        py, px = min(plan.patch[1], region.height), min(plan.patch[2], region.width)
        samples = region.samples[1] - region.samples[0]
        total += samples * math.prod((nz // pz, region.height // py, region.width // px))
    return total


def compiled(net: torch.nn.Module, sampler: Any, device: torch.device,
             precision: str) -> torch.nn.Module:
    """``torch.compile(net)``, tried once on a batch of the sampler's patch shape (forward and
    backward); where compiling fails, a one-line warning and ``net`` itself."""
    from ..devices import autocast

    try:
        fast = torch.compile(net)
        channels = next(net.parameters()).shape[1]
        shape = sampler.patch[1:] if sampler.flat_z else sampler.patch
        probe = torch.zeros((1, channels, *shape), device=device)
        with autocast(device, precision):
            out = fast(probe)
        out.float().sum().backward()
        net.zero_grad(set_to_none=True)
        return fast
    except Exception as exc:  # compilers fail in many ways (no C compiler, no Triton, ...)
        net.zero_grad(set_to_none=True)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        warnings.warn(f"torch.compile is not available here ({first}); training without it.",
                      RuntimeWarning, stacklevel=2)
        return net
