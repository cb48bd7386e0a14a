"""Training: :class:`Trainer` and its event generator (:func:`napari_gr2r.engine.train` wraps it).

This module is longer than 400 lines because :meth:`Trainer.iter_fit` is one generator whose
parts (steps, validation, progress events, the collapse watch, checkpoints) share the run's
state; what checkpoints hold and how a run resumes lives in :mod:`.resume`.
"""

from __future__ import annotations

import copy
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import TrainConfig
from ..data.collection import SourceSet, as_image_list
from ..data.normalization import Normalization
from ..devices import resolve_device, usable_device
from ..errors import ConfigError, InputError, NumericalError
from ..model.model import GR2RModel
from ..model.networks import build_network, count_parameters, place
from ..noise.level import NoiseLevel
from ..noise.refit import VarianceCurve, refit
from ..quality.risk import patch_mse
from .averaging import WeightAverage
from .events import (
    CollapseDetected,
    TrainEvent,
    TrainingFinished,
    TrainingProgress,
    TrainingStarted,
)
from .losses import build_objective, build_validation
from .resume import RunRecorder, RunState, run_to_resume

N_VAL_PATCHES = 16
RISK_PROBES = 2
"""Monte-Carlo probes of the estimated PSNR at each validation."""
RISK_PATCHES = 50_000
"""Patches the estimated PSNR's noise variance is refitted on (see :mod:`.noise_refit`)."""


class CollapseWarning(UserWarning):
    """Training is converging to the identity: the output is the noisy input."""


def choose_dims(config: TrainConfig, nz: int) -> int:
    """2 or 3. In ``auto``, a 3D network when Z has at least ``2 ** (depth + 1)`` slices,
    except with the ``fast`` preset, which trains a 2D network over slices (far cheaper on a CPU).
    """
    if config.net_dims == "2d":
        return 2
    if config.net_dims == "3d":
        if nz < 4:
            raise InputError(
                f"A 3D network needs a Z axis with at least 4 slices; this image has {nz}. "
                "Use net_dims='2d' or 'auto'."
            )
        return 3
    if config.preset == "fast":
        return 2  # slice by slice: the laptop-CPU preset
    return 3 if nz >= 2 ** (config.depth + 1) else 2


class Trainer:
    """Trains a denoiser on one (possibly lazy) N-D image, or on several.

    Parameters
    ----------
    data : numpy, dask or zarr array, or a list of them
        The noisy image; it is never modified. A list (or any iterable) of arrays or image
        paths trains one model on all of them: they share the axes and channels, not the
        sizes; patches and held-out validation patches come from every image, and the
        normalisation and the noise model are fitted on all of them, each image weighing as
        much as its size (see :mod:`napari_gr2r.engine.data.collection`).
    axes : str
        One letter per dimension, e.g. ``"ZYX"`` (the same for every image).
    config : TrainConfig, optional
        Defaults to ``TrainConfig()`` (stable GR2R).
    target : array, optional
        Clean image of the same shape, for ``method="n2c"`` (a list with several images).
    model : GR2RModel, optional
        A model to continue training (its optimiser state, step count and history too): by
        default ``config.steps`` more steps, with a new learning-rate schedule.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    checkpoint_path : path, optional
        Write the run to this model file while it trains: every ``config.checkpoint_every``
        steps (default: every two minutes), when it is stopped, and when it ends. Each write
        is atomic, so a process killed at any moment leaves a loadable file, at most one
        interval behind. The file holds the best weights so far (it denoises as it is) and,
        until the run has finished, what resuming it needs.
    resume : bool
        Continue the unfinished run that ``model`` holds (loaded from a checkpoint, or
        stopped) where it left off, up to step ``config.steps`` of that run: the same
        learning-rate schedule, held-out patches and random draws, so that on the CPU an
        in-memory image ends with the weights an uninterrupted run would have had (a lazy
        image's block pool is drawn afresh). ``config`` defaults to the run's own. A model
        of a finished run continues up to ``config.steps`` steps in all.

    Examples
    --------
    >>> trainer = Trainer(noisy, axes="YX", config=TrainConfig.from_preset("fast"))  # doctest: +SKIP
    >>> for event in trainer.iter_fit():                                               # doctest: +SKIP
    ...     print(event)
    >>> model = trainer.model                                                          # doctest: +SKIP
    """

    def __init__(self, data: Any, axes: str, config: TrainConfig | None = None, *,
                 target: Any = None, model: GR2RModel | None = None,
                 device: str = "auto", checkpoint_path: str | os.PathLike | None = None,
                 resume: bool = False) -> None:
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
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.last_checkpoint_step: int | None = None
        """The model step of the latest file written to ``checkpoint_path`` (None: none yet)."""
        self._resume: RunState | None = None
        self._run_start: int | None = None  # None: a run of config.steps from the model's step
        if resume:
            self._resume, self._run_start = run_to_resume(model, config.steps)
        net_fields = ("width", "depth", "residual")
        if model is not None and any(getattr(config, f) != getattr(model.config, f)
                                     for f in net_fields):
            raise ConfigError(
                f"The model's network has width {model.config.width}, depth "
                f"{model.config.depth} and residual={model.config.residual}; to continue "
                "training it, keep them (or train a new model)."
            )
        self.config = config
        cfg = self.config
        images = as_image_list(data)
        targets = None
        if cfg.method == "n2c":
            if target is None:
                raise InputError("method='n2c' is supervised: pass the clean image as target=.")
            targets = [target] if images is None else as_image_list(target)
            if targets is None:
                raise InputError("With several images, pass a list of clean targets (one per "
                                 "image) as target=.")
        self.images = SourceSet([data] if images is None else images, axes, targets)
        """The training images (one, or several with the same axes)."""
        self.source = self.images.sources[0]
        self.target = self.images.target(0)
        info = self.source.info
        nz = self.images.min_z

        self._stop = threading.Event()
        self._rng = np.random.default_rng(cfg.seed)
        self._torch_gen_seed = int(self._rng.integers(2**31))
        self.device = resolve_device(device)

        self._resume_best: dict[str, torch.Tensor] | None = None
        if model is not None:
            for image_info in self.images.infos:
                model.check_compatible(image_info)
            model.config = config
            self.model_ = model
            self.dims = model.dims
            self.net = model.net
            self.norm, self.noise_level = model.normalization, model.noise_level
            self._risk_noise: tuple[NoiseLevel, VarianceCurve | None] = (model.noise_level, None)
            if self._resume is not None:
                # the model's weights are the best so far; the run goes on from its current ones
                if model.best_val_loss is not None:
                    self._resume_best = copy.deepcopy(self.net.state_dict())
                self.net.load_state_dict(self._resume.weights)
        else:
            blocks = self.images.statistics_blocks(self._rng)
            self.norm = Normalization.fit(blocks)
            blocks = [self.norm.apply(b) for b in blocks]
            self.noise_level = NoiseLevel.estimate(blocks, self._rng)
            # the estimated PSNR's noise model (its own generator: training's draws stay put)
            self._risk_noise = refit(self.noise_level, blocks, np.random.default_rng(cfg.seed),
                                     max_patches=RISK_PATCHES)
            del blocks
            self.dims = choose_dims(cfg, nz)
            if cfg.seed is not None:
                torch.manual_seed(cfg.seed)
            self.net = build_network(self.dims, info.n_channels, cfg.width, cfg.depth,
                                     cfg.residual)
            self.model_ = GR2RModel(
                net=self.net, config=cfg, axes=info.axes, channels=info.n_channels,
                dims=self.dims, normalization=self.norm, noise_level=self.noise_level,
                data_shape=tuple(int(n) for n in info.shape),
            )
        self.device = usable_device(self.net, self.device, self.dims, info.n_channels)
        place(self.net, self.device)

        flat_z = self.dims == 2
        patch = (cfg.patch_size_z, cfg.patch_size, cfg.patch_size)
        self.sampler, batches, self._val_seed = self.images.samplers(
            self.norm, patch, cfg.val_fraction, self._rng, flat_z, cfg.augment,
            cfg.batch_size, N_VAL_PATCHES,
            val_seed=self._resume.val_seed if self._resume is not None else None)
        self.val_batches: list[list[torch.Tensor]] = [
            [torch.from_numpy(a) for a in arrays] for arrays in batches]
        self.objective = build_objective(cfg, self.norm, self.noise_level)
        self.validation = build_validation(cfg, self.objective, self.noise_level)
        if self._resume is not None:
            self._resume.restore_rng(self._rng)  # after the samplers drew their pools

    # ----------------------------------------------------------------------------------------
    @property
    def model(self) -> GR2RModel:
        """The model with the best weights so far (best validation loss, else the latest)."""
        return self.model_

    def request_stop(self) -> None:
        """Ask :meth:`iter_fit` to end after the current step (safe from any thread); asked
        before :meth:`iter_fit` starts, the run ends before its first step."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def fit(self, callback: Callable[[TrainEvent], Any] | None = None) -> GR2RModel:
        """Run :meth:`iter_fit` to the end, passing each event to ``callback``."""
        for event in self.iter_fit():
            if callback is not None:
                callback(event)
        return self.model

    def _lr_factor(self, step: int, total: int) -> float:
        cfg = self.config
        warm = min(cfg.warmup_steps, max(total // 10, 1))
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(total - warm, 1)
        return cfg.lr_min_factor + (1 - cfg.lr_min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    def _validate(self, generator_seed: int, net: torch.nn.Module | None = None
                  ) -> tuple[float, float, float]:
        """Validation loss (:func:`~napari_gr2r.engine.training.losses.build_validation`, with fixed
        random draws), residual energy and estimated PSNR (:func:`~.risk.patch_mse`) of
        ``net`` (default: the network being trained)."""
        net = self.net if net is None else net
        gen = _generator(self.device, generator_seed)
        losses, energies = [], []
        net.eval()
        with torch.no_grad():
            for arrays in self.val_batches:
                y = arrays[0].to(self.device)
                t = arrays[1].to(self.device) if len(arrays) > 1 else None
                result = self.validation(net, y, t, gen)
                losses.append(float(result.loss.detach()))
                energies.append(float((y - net(y)).square().mean()))
            level, curve = self._risk_noise
            mse = patch_mse(net, [a[0].to(self.device) for a in self.val_batches], level,
                            curve, probes=RISK_PROBES, seed=generator_seed)
        self.net.train()
        return float(np.mean(losses)), float(np.mean(energies)), -10 * math.log10(mse)

    def iter_fit(self) -> Iterator[TrainEvent]:
        """Train for ``config.steps`` steps, yielding typed events.

        Yields :class:`TrainingStarted` once, :class:`TrainingProgress` every ``event_every``
        steps, :class:`CollapseDetected` at most once, :class:`CheckpointSaved` after each
        write to ``checkpoint_path``, and :class:`TrainingFinished` last.
        :meth:`request_stop` ends the loop after the current step (or before the first one,
        when it was called before this method); the best weights are kept, and the model
        holds what resuming the run needs (``model.training_state``).
        """
        cfg, model = self.config, self.model_
        start_step = model.step
        # a resumed run goes on where it stopped; a later call trains config.steps more
        resume, self._resume = self._resume, None
        run_start = start_step if self._run_start is None else self._run_start
        self._run_start = None
        done = start_step - run_start
        total = cfg.steps
        optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        if model.optimizer_state is not None:
            try:
                optimizer.load_state_dict(model.optimizer_state)
            except (ValueError, KeyError):
                warnings.warn("The saved optimiser state does not fit; starting Adam afresh.",
                              RuntimeWarning, stacklevel=2)
        gen = _generator(self.device, self._torch_gen_seed + start_step)
        if resume is not None:
            resume.restore_generator(gen)
        val_seed = self._torch_gen_seed + 7919
        recorder = RunRecorder(self.checkpoint_path, cfg.checkpoint_every, run_start, total,
                               self._rng, self._val_seed)
        t0 = time.perf_counter()
        yield TrainingStarted(
            step=start_step, total_steps=run_start + total, elapsed_s=0.0,
            device=str(self.device), net_dims=self.dims,
            n_parameters=count_parameters(self.net), patch_shape=self.sampler.patch,
            noise_sd=math.sqrt(self.noise_level.typical[0]) * self.norm.scale(0),
            noise_correlation=self.noise_level.neighbour_correlation,
            has_validation=bool(self.val_batches), resumed_from_step=start_step,
        )
        best_val = model.best_val_loss
        best_state = copy.deepcopy(self.net.state_dict()) if best_val is not None else None
        ema = WeightAverage(self.net, cfg.ema_decay, done,
                            resume.ema_weights if resume is not None else None)
        if resume is not None:
            best_state, self._resume_best = self._resume_best, None
        sums: dict[str, float] = {}
        count = 0
        val_loss: float | None = None
        estimated_psnr: float | None = None
        validated = False
        val_energy: float | None = None
        energy_ema: float | None = None
        collapsed = False
        last_t, last_step = t0, done
        step = done
        completed = False
        self.net.train()
        try:
            for step in range(done + 1, total + 1):
                if self._stop.is_set():
                    step -= 1
                    break
                lr = cfg.lr * self._lr_factor(step - 1, total)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                arrays = self.sampler.batch(cfg.batch_size)
                y = torch.from_numpy(arrays[0]).to(self.device)
                t = torch.from_numpy(arrays[1]).to(self.device) if len(arrays) > 1 else None
                result = self.objective(self.net, y, t, gen)
                optimizer.zero_grad(set_to_none=True)
                result.loss.backward()
                optimizer.step()
                ema.update(self.net)
                if not math.isfinite(float(result.loss.detach())):
                    raise NumericalError(
                        f"The loss became {float(result.loss.detach())} at step "
                        f"{run_start + step}: training diverged. Lower the learning rate "
                        f"(lr={cfg.lr:g} now); the best weights so far are kept."
                    )
                sums["loss"] = sums.get("loss", 0.0) + float(result.loss.detach())
                for k, v in result.terms.items():
                    sums[k] = sums.get(k, 0.0) + v
                if result.residual_energy is not None:
                    sums["residual_energy"] = sums.get("residual_energy", 0.0) + \
                        result.residual_energy
                count += 1

                if self.val_batches and (step % cfg.val_every == 0 or step == total):
                    val_loss, val_energy, estimated_psnr = self._validate(val_seed, ema.net)
                    validated = True
                    if best_val is None or val_loss < best_val:
                        best_val = val_loss
                        best_state = copy.deepcopy(ema.net.state_dict())
                        model.best_step = run_start + step

                if step % cfg.event_every == 0 or step == total:
                    now = time.perf_counter()
                    rate = cfg.batch_size * (step - last_step) / max(now - last_t, 1e-9)
                    elapsed = now - t0
                    # residual energy: on the held-out patches when just validated, else
                    # the training batches' average (or one extra pass for r2r and n2c)
                    train_energy = sums.pop("residual_energy", None)
                    if validated:
                        energy = val_energy
                    elif train_energy is not None:
                        energy = train_energy / count
                    else:
                        energy = self._residual_energy(y)
                    means = {k: v / count for k, v in sums.items()}
                    loss = means.pop("loss")
                    event = TrainingProgress(
                        step=run_start + step, total_steps=run_start + total,
                        elapsed_s=elapsed, loss=loss, terms=means, val_loss=val_loss,
                        validated=validated, residual_energy=energy, lr=lr,
                        estimated_psnr=estimated_psnr,
                        patches_per_s=rate, eta_s=elapsed / (step - done) * (total - step),
                    )
                    model.history.append(_history_row(event))
                    yield event
                    sums, count, validated = {}, 0, False
                    last_t, last_step = now, step
                    energy_ema = energy if energy_ema is None else 0.7 * energy_ema + 0.3 * energy
                    threshold = cfg.collapse_fraction * self.noise_level.mean_variance
                    if not collapsed and step > total // 10 and energy_ema < threshold:
                        collapsed = True
                        message = (
                            f"Training is collapsing onto the noisy input at step "
                            f"{run_start + step}: the network's output differs from its input by "
                            f"{energy_ema:.2e} (mean square), far below the estimated noise "
                            f"variance {self.noise_level.mean_variance:.2e}. Use method='gr2r' "
                            "(the stable default) or fewer steps; the best weights are kept."
                        )
                        warnings.warn(message, CollapseWarning, stacklevel=2)
                        yield CollapseDetected(
                            step=run_start + step, total_steps=run_start + total,
                            elapsed_s=elapsed, residual_energy=energy_ema,
                            noise_variance=self.noise_level.mean_variance, message=message,
                        )
                saved = recorder.periodic(step, model, self.net, gen, best_state, optimizer,
                                          ema_weights=ema.state,
                                          best_val_loss=best_val, best_step=model.best_step)
                if saved is not None:
                    self.last_checkpoint_step = saved.step
                    yield saved
            completed = True
        finally:
            model.step = run_start + step
            model.optimizer_state = optimizer.state_dict()
            model.training_state = None
            if completed and step < total:  # stopped: keep what resuming needs
                model.training_state = recorder.state(self.net, gen, ema.state()).to_dict()
            if best_state is not None:
                self.net.load_state_dict(best_state)
                model.best_val_loss = best_val
            else:
                self.net.load_state_dict(ema.net.state_dict())
                model.best_step = model.step
            self.net.eval()
        stopped = self._stop.is_set()
        self._stop.clear()  # the request is consumed: a later iter_fit() trains again
        saved = recorder.final(model)
        if saved is not None:
            self.last_checkpoint_step = saved.step
            yield saved
        yield TrainingFinished(
            step=model.step, total_steps=run_start + total,
            elapsed_s=time.perf_counter() - t0, stopped=stopped,
            best_step=model.best_step, best_val_loss=best_val, collapsed=collapsed,
        )

    def _residual_energy(self, y: torch.Tensor) -> float:
        with torch.no_grad():
            return float((y - self.net(y)).square().mean())


def _generator(device: torch.device, seed: int) -> torch.Generator:
    gen_device = device if device.type == "cuda" else torch.device("cpu")
    return torch.Generator(device=gen_device).manual_seed(int(seed))


def _history_row(event: TrainingProgress) -> dict[str, Any]:
    row: dict[str, Any] = {"step": event.step, "loss": event.loss, "lr": event.lr,
                           "elapsed_s": event.elapsed_s}
    row.update(event.terms)
    if event.validated:
        row["val_loss"] = event.val_loss
        if event.estimated_psnr is not None:
            row["estimated_psnr"] = event.estimated_psnr
    if event.residual_energy is not None:
        row["residual_energy"] = event.residual_energy
    return row
