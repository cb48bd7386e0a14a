"""One call of :meth:`~.trainer.Trainer.iter_fit`: its learning-rate schedule and
:class:`Loop`, the state it keeps while it runs."""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import torch

from ..config import TrainConfig
from .averaging import WeightAverage
from .guard import DivergenceGuard
from .resume import LiveRun, RunRecorder
from .validation import BestWeights, CollapseWatch, Score, torch_generator


def lr_factor(config: TrainConfig, step: int, total: int) -> float:
    """The learning rate's factor at run step ``step`` (from 0) of ``total``: a linear
    warm-up, then cosine decay to ``lr_min_factor``."""
    warm = min(config.warmup_steps, max(total // 10, 1))
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(total - warm, 1)
    return config.lr_min_factor + (1 - config.lr_min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


class Loop:
    """One call of :meth:`Trainer.iter_fit`: the run's bounds, its optimiser and generators,
    what it keeps (the weight average, the best weights, the collapse watch) and the losses
    summed since the last progress event."""

    def __init__(self, trainer: Any) -> None:
        cfg, model = trainer.config, trainer.model_
        resume, trainer._resume = trainer._resume, None
        start = model.step
        # a resumed run goes on where it stopped; a later call trains config.steps more
        self.run_start = start if trainer._run_start is None else trainer._run_start
        trainer._run_start = None
        self.start, self.total = start, cfg.steps
        self.done = start - self.run_start
        self.optimizer = torch.optim.Adam(trainer.net.parameters(), lr=cfg.lr)
        # fp16 gradients underflow without a scaler (a no-op at other precisions)
        self.scaler = torch.amp.GradScaler("cuda", enabled=trainer.precision == "fp16")
        if model.optimizer_state is not None:
            try:
                self.optimizer.load_state_dict(model.optimizer_state)
            except (ValueError, KeyError):
                warnings.warn("The saved optimiser state does not fit; starting Adam afresh.",
                              RuntimeWarning, stacklevel=3)
        # each rank its own objective draws (rank 0 those of a run in one process)
        seed = trainer._torch_gen_seed + start + 104_729 * trainer.world.rank
        self.generator = torch_generator(trainer.device, seed)
        if resume is not None and trainer.world.is_main:
            resume.restore_generator(self.generator)
        self.recorder = RunRecorder(trainer.checkpoint_path, cfg.checkpoint_every,
                                    self.run_start, self.total, trainer._rng, trainer._val_seed)
        self.ema = WeightAverage(trainer.net, cfg.ema_decay, self.done,
                                 resume.ema_weights if resume is not None else None)
        best = model.best_val_loss
        if resume is not None:
            weights, trainer._resume_best = trainer._resume_best, None
        else:
            weights = {k: v.clone() for k, v in trainer.net.state_dict().items()} \
                if best is not None else None
        self.best = BestWeights(best, weights, model.best_step)
        self.guard = DivergenceGuard()
        self.validates = trainer.world.broadcast(bool(trainer.validator))  # rank 0 validates
        self.watch = CollapseWatch(trainer.noise_level.mean_variance, cfg.collapse_fraction,
                                   self.total)
        self.live = LiveRun(model, trainer.net, self.generator, self.optimizer, self.ema,
                            self.best)
        self.t0 = self.last_t = time.perf_counter()
        self.last_step = self.done
        self.sums: dict[str, float] = {}
        self.count = 0
        self.score: Score | None = None
        self.validated = False
        self.stopped = False

    def stop(self, trainer: Any) -> bool:
        """Whether the run stops before its next step (asked on any rank, agreed by all)."""
        self.stopped = trainer.world.any(trainer._stop.is_set(), trainer.device)
        return self.stopped

    def add(self, loss: float, terms: dict[str, float], energy: float | None) -> None:
        self.sums["loss"] = self.sums.get("loss", 0.0) + loss
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        if energy is not None:
            self.sums["residual_energy"] = self.sums.get("residual_energy", 0.0) + energy
        self.count += 1
