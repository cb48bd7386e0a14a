"""Training: :class:`Trainer` and its event generator (:func:`napari_gr2r.engine.train` wraps it).

The trainer only loops: what a run needs before its first step is built by :mod:`.setup`, what
one loop keeps in :mod:`.loop`, the held-out score, best weights and collapse watch live in
:mod:`.validation`, the recovery from a divergence in :mod:`.guard`, and what checkpoints hold
and how a run resumes in :mod:`.resume`.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from ..config import TrainConfig
from ..data.context import centre_of
from ..devices import autocast
from ..errors import NumericalError, ProcessLostError
from ..model.model import GR2RModel
from ..model.networks import count_parameters
from ..noise.calibration import NoiseCalibration
from .distributed import lost_process, lr_scale
from .events import TrainEvent, TrainingFinished, TrainingProgress, TrainingStarted, history_row
from .loop import Loop, lr_factor
from .mean_shift import SHIFT_BATCH, SHIFT_BATCHES, keep_mean
from .setup import choose_dims, prepare
from .validation import CollapseWarning

__all__ = ["CollapseWarning", "Trainer", "choose_dims"]


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
    distributed : bool or None
        Train with the other processes of a ``torchrun`` launch (DistributedDataParallel; see
        :mod:`.distributed`). None (default): when started by torchrun (or in an initialised
        process group); True: require it; False: train alone.

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
                 resume: bool = False, distributed: bool | None = None,
                 noise: NoiseCalibration | None = None) -> None:
        setup = prepare(data, axes, config, target=target, model=model, device=device,
                        resume=resume, distributed=distributed, noise=noise)
        self.world = setup.world
        """This process's place among the training processes (see :mod:`.distributed`)."""
        self.precision = setup.precision
        """The arithmetic of the training passes: ``"fp32"``, ``"bf16"`` or ``"fp16"``."""
        self._train_step = setup.train_step
        # rank 0 writes the checkpoints and the model file
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None and \
            self.world.is_main else None
        self.last_checkpoint_step: int | None = None
        """The model step of the latest file written to ``checkpoint_path`` (None: none yet)."""
        self.config = setup.config
        self.images = setup.images
        """The training images (one, or several with the same axes)."""
        self.source = self.images.sources[0]
        self.target = self.images.target(0)
        self.model_ = setup.model
        self.net, self.dims = setup.model.net, setup.model.dims
        self.norm, self.noise_level = setup.stats.norm, setup.stats.noise_level
        self.device = setup.device
        self.sampler, self.val_batches = setup.sampler, setup.val_batches
        self.objective, self.validator = setup.objective, setup.validator
        self.validation = setup.validator.validation
        self._rng, self._torch_gen_seed, self._val_seed = setup.rng, setup.torch_seed, \
            setup.val_seed
        self._resume, self._run_start = setup.resume, setup.run_start
        self._resume_best = setup.resume_best
        self._stop = threading.Event()

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
        try:
            for event in self.iter_fit():
                if callback is not None:
                    callback(event)
        except BaseException:  # a callback's error too: the other processes must not wait
            self.world.mark_broken()
            raise
        return self.model

    def iter_fit(self) -> Iterator[TrainEvent]:
        """Train for ``config.steps`` steps, yielding typed events.

        Yields :class:`TrainingStarted` once, :class:`TrainingProgress` every ``event_every``
        steps, :class:`CollapseDetected` at most once, :class:`CheckpointSaved` after each
        write to ``checkpoint_path``, and :class:`TrainingFinished` last.
        :meth:`request_stop` ends the loop after the current step (or before the first one,
        when it was called before this method); the best weights are kept, and the model
        holds what resuming the run needs (``model.run.unfinished``).
        """
        cfg, loop = self.config, Loop(self)
        yield self._started(loop)
        step, completed, lost = loop.done, False, None
        self.net.train()
        try:
            for step in range(loop.done + 1, loop.total + 1):
                try:
                    if loop.stop(self):
                        step -= 1
                        break
                    lr, y = self._step(loop, step)
                except ProcessLostError as exc:  # the weights are those of the step before
                    lost, step = exc, step - 1
                    break
                if loop.validates and (step % cfg.val_every == 0 or step == loop.total):
                    self._validate(loop, step)
                    if loop.guard.exhausted:
                        loop.stopped = True
                        break
                if loop.count and (step % cfg.event_every == 0 or step == loop.total):
                    yield from self._progress(loop, step, lr, y)
                saved = loop.recorder.periodic(step, loop.live)
                if saved is not None:
                    self.last_checkpoint_step = saved.step
                    yield saved
            completed = True
        except BaseException:
            self.world.mark_broken()  # the others learn of it at their next collective
            raise
        finally:
            self._end(loop, step, completed)
        stopped = self._stop.is_set() or loop.stopped
        self._stop.clear()  # the request is consumed: a later iter_fit() trains again
        saved = loop.recorder.final(self.model_)
        if saved is not None:
            self.last_checkpoint_step = saved.step
            yield saved
        if lost is not None:
            raise lost_process(lost, self.world, self.model_, saved) from lost
        yield TrainingFinished(
            step=self.model_.step, total_steps=loop.run_start + loop.total,
            elapsed_s=time.perf_counter() - loop.t0, stopped=stopped,
            best_step=self.model_.best_step, best_val_loss=loop.best.val_loss,
            collapsed=loop.watch.collapsed,
        )

    # ----------------------------------------------------------------------------------------
    def _started(self, loop: Loop) -> TrainingStarted:
        return TrainingStarted(
            step=loop.start, total_steps=loop.run_start + loop.total, elapsed_s=0.0,
            device=str(self.device), net_dims=self.dims,
            n_parameters=count_parameters(self.net), patch_shape=self.sampler.patch,
            noise_sd=math.sqrt(self.noise_level.typical[0]) * self.norm.scale(0),
            noise_correlation=self.noise_level.neighbour_correlation,
            noise_source=self.noise_level.source,
            has_validation=bool(self.val_batches), resumed_from_step=loop.start,
            world_size=self.world.size, backend=self.world.backend, precision=self.precision,
            context=int(self.config.context), members=self.config.members,
            start=self.config.start if loop.start == 0 else "model",
        )

    def _validate(self, loop: Loop, step: int) -> None:
        """Rank 0 scores the weight average on the held-out patches and keeps the best
        weights; every process goes back to them if the run diverged (see :mod:`.guard`)."""
        diverged, at, loss = False, loop.run_start + step, None
        if self.validator:
            loop.score, loop.validated = self.validator.score(loop.ema.net), True
            self.net.train()
            loss = loop.score.loss
            diverged = loop.guard.diverged(loss, loop.best.val_loss)
            if not diverged:
                loop.best.offer(loss, loop.ema.net, at)
        if self.world.any(diverged, self.device):
            loop.guard.recover(self, loop, at, f"the validation loss rose to {loss:.3g} from "
                               f"{loop.best.val_loss:.3g}" if self.validator else "")

    def _step(self, loop: Loop, step: int) -> tuple[float, torch.Tensor]:
        """One optimiser step (run step ``step``, from 1); returns its learning rate and batch."""
        cfg = self.config
        lr = cfg.peak_lr * lr_scale(cfg.lr_scaling, self.world.size) * \
            lr_factor(cfg, step - 1, loop.total) * loop.guard.lr_factor
        for group in loop.optimizer.param_groups:
            group["lr"] = lr
        # an ensemble's members each take ``batch_size`` of the patches (interleaved)
        arrays = self.sampler.batch(cfg.batch_size * cfg.members)
        y = torch.from_numpy(arrays[0]).to(self.device)
        t = torch.from_numpy(arrays[1]).to(self.device) if len(arrays) > 1 else None
        loop.optimizer.zero_grad(set_to_none=True)
        with self.world.collective():  # DistributedDataParallel averages the gradients here
            with autocast(self.device, self.precision):
                result = self._train_step(y, t, loop.generator)
            loop.scaler.scale(result.loss).backward()
        loss = float(result.loss.detach())
        if not loop.guard.step_is_sound(self, loop, loop.run_start + step, lr, loss,
                                        check_gradients=self.precision != "fp16"):
            return lr, y  # skipped: the weights stay those of the step before
        loop.scaler.step(loop.optimizer)
        loop.scaler.update()
        loop.ema.update(self.net)
        if not math.isfinite(loss):
            raise NumericalError(
                f"The loss became {loss} at step {loop.run_start + step}: training diverged. "
                f"Lower the learning rate ({'prior_lr' if cfg.start == 'prior' else 'lr'}="
                f"{cfg.peak_lr:g} now); the best weights so far are kept."
            )
        loop.add(loss, result.terms, result.residual_energy)
        return lr, y

    def _progress(self, loop: Loop, step: int, lr: float, y: torch.Tensor
                  ) -> Iterator[TrainEvent]:
        """The progress event after run step ``step``, and the collapse watch's, if any."""
        now = time.perf_counter()
        rate = self.config.batch_size * self.config.members * self.world.size * \
            (step - loop.last_step) / max(now - loop.last_t, 1e-9)
        elapsed = now - loop.t0
        # residual energy: on the held-out patches when just validated, else the training
        # batches' average (or one extra pass for r2r and n2c)
        train_energy = loop.sums.pop("residual_energy", None)
        if loop.validated and loop.score is not None:
            energy = loop.score.energy
        elif train_energy is not None:
            energy = train_energy / loop.count
        else:
            energy = self._residual_energy(y)
        means = {k: v / loop.count for k, v in loop.sums.items()}
        loss = means.pop("loss")
        score = loop.score
        event = TrainingProgress(
            step=loop.run_start + step, total_steps=loop.run_start + loop.total,
            elapsed_s=elapsed, loss=loss, terms=means,
            val_loss=score.loss if score is not None else None, validated=loop.validated,
            residual_energy=energy, lr=lr,
            estimated_psnr=score.psnr if score is not None else None,
            patches_per_s=rate, eta_s=elapsed / (step - loop.done) * (loop.total - step),
        )
        row = history_row(event)
        if self.world.active:
            row["world_size"] = self.world.size
        self.model_.history.append(row)
        yield event
        loop.sums, loop.count, loop.validated = {}, 0, False
        loop.last_t, loop.last_step = now, step
        collapse = loop.watch.update(energy, step, loop.run_start + step,
                                     loop.run_start + loop.total, elapsed)
        if collapse is not None:
            yield collapse

    def _end(self, loop: Loop, step: int, completed: bool) -> None:
        """The run's bookkeeping when the loop ends (finished, stopped or failed): the model
        takes the best weights, and a stopped run keeps what resuming it needs."""
        model = self.model_
        model.step = loop.run_start + step
        model.optimizer_state = loop.optimizer.state_dict()
        model.run.unfinished = None
        if completed and step < loop.total:  # stopped: keep what resuming needs
            model.run.unfinished = loop.recorder.state(self.net, loop.generator,
                                                       loop.ema.state())
        if loop.best.weights is not None:
            self.net.load_state_dict(loop.best.weights)
            model.best_val_loss = loop.best.val_loss
            model.best_step = loop.best.step
        else:
            self.net.load_state_dict(loop.ema.net.state_dict())
            model.best_step = model.step
        if completed and self.config.keep_mean and self.config.method != "n2c" \
                and self.world.is_main:
            drawn = [[torch.from_numpy(a) for a in self.sampler.batch(SHIFT_BATCH)]
                     for _ in range(SHIFT_BATCHES)]
            keep_mean(self.net, self.val_batches + drawn, self.device)
        if self.world.active and completed and not self.world.broken:  # rank 0's choice
            self.world.share_weights(self.net)
            model.best_step, model.best_val_loss = self.world.broadcast(
                (model.best_step, model.best_val_loss))
        self.net.eval()

    def _residual_energy(self, y: torch.Tensor) -> float:
        with torch.no_grad():
            fy = self.net(y)  # the centre plane's, with context
            return float((centre_of(y, fy.shape[1]) - fy).square().mean())

