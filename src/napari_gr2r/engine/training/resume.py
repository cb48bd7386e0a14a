"""Checkpoints of a training run in progress, and what resuming it needs.

A checkpoint is an ordinary model file (:func:`~napari_gr2r.engine.save_model`): it holds the
best weights so far, so it loads and denoises like a finished model, plus a ``training`` entry
with what continuing the run needs (:class:`~napari_gr2r.engine.model.run.RunState`): the
current weights, where the run started and how long it was planned to be, the states of the
random generators and the seed of the held-out patches. Everything is a plain type or a
tensor, so the file loads with ``torch.load(weights_only=True)``; it is written atomically, so a
process killed at any moment leaves the previous checkpoint (or the new one) whole.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..model.checkpoint import save_model
from ..model.model import GR2RModel
from ..model.run import RUN_STATE_VERSION, RunState
from .averaging import WeightAverage
from .events import CheckpointSaved
from .validation import BestWeights

CHECKPOINT_INTERVAL_S = 120.0
"""Seconds of training between checkpoints when ``TrainConfig.checkpoint_every`` is None.

A step's cost differs by orders of magnitude between presets and devices, so no fixed step
count means "every two minutes" everywhere; a clock does. What a write costs is measured in
docs/method-notes.md (``python -m benchmarks.preset_cost --checkpoint-writes``).
"""

__all__ = [
    "CHECKPOINT_INTERVAL_S",
    "RUN_STATE_VERSION",
    "CheckpointClock",
    "LiveRun",
    "RunRecorder",
    "RunState",
    "run_state_of",
    "run_to_resume",
    "write_checkpoint",
]


class CheckpointClock:
    """Says when the next checkpoint is due: every ``every_steps`` steps, or by the clock.

    ``every_steps=None`` checkpoints every ``interval_s`` seconds; ``0`` never (only at the
    end of the run).
    """

    def __init__(self, every_steps: int | None, interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        self.every_steps = every_steps
        self.interval_s = interval_s
        self._last = time.monotonic()

    def due(self, step: int) -> bool:
        """Whether to write a checkpoint after ``step`` (steps of the run, from 1)."""
        if self.every_steps is None:
            now = time.monotonic()
            if now - self._last >= self.interval_s:
                self._last = now
                return True
            return False
        return self.every_steps > 0 and step % self.every_steps == 0


def run_state_of(model: GR2RModel, source: str = "the model") -> RunState | None:
    """The unfinished run a model carries (loaded from a checkpoint), or None."""
    return model.run.unfinished


def run_to_resume(model: GR2RModel | None, steps: int) -> tuple[RunState | None, int]:
    """``(state, run_start)`` of the run ``model`` holds, to go on up to step ``steps`` of it.

    A model without a run state (a finished run) goes on up to ``steps`` steps in all.
    """
    if model is None:
        raise ConfigError("resume=True continues the run a model holds: pass model=.")
    state = run_state_of(model)
    run_start = state.run_start if state is not None else 0
    if model.step >= run_start + steps:
        raise ConfigError(
            f"The model has trained {model.step} steps, as many as the run asks for ({steps} "
            f"steps from step {run_start}); ask for more steps to train it further."
        )
    return state, run_start


def write_checkpoint(model: GR2RModel, path: str | os.PathLike,
                     best_weights: dict[str, torch.Tensor] | None,
                     state: RunState | None, **changes: Any) -> Path:
    """Write ``model`` to ``path`` atomically, with ``best_weights`` as its weights.

    ``model.net`` holds the current weights while training runs; ``best_weights`` (None: the
    current ones) become the file's weights, ``state`` (None for a finished run) its
    training entry, and ``changes`` replace fields (``step``, ``optimizer_state``, ...).
    ``model`` itself is not changed.
    """
    net = model.net
    if best_weights is not None:
        net = copy.deepcopy(model.net)
        net.load_state_dict(best_weights)
    snapshot = dataclasses.replace(model, net=net,
                                   run=model.run.snapshot(unfinished=state, **changes))
    return save_model(snapshot, path)


@dataclass
class LiveRun:
    """A run as its loop holds it: what a checkpoint written mid-run is made of."""

    model: GR2RModel
    net: torch.nn.Module
    generator: torch.Generator
    optimizer: torch.optim.Optimizer
    ema: WeightAverage
    best: BestWeights


class RunRecorder:
    """Captures a run's state and writes its checkpoints, for :meth:`Trainer.iter_fit`.

    Parameters
    ----------
    path : path or None
        The checkpoint file; None captures the state of a stopped run but writes nothing.
    every_steps : int or None
        ``TrainConfig.checkpoint_every``.
    run_start, run_steps : int
        The run: from the model's step ``run_start``, ``run_steps`` steps.
    rng : numpy.random.Generator
        The patch generator (its state is captured, never changed).
    val_seed : int
        Seed of the held-out patches.
    """

    def __init__(self, path: str | os.PathLike | None, every_steps: int | None, run_start: int,
                 run_steps: int, rng: np.random.Generator, val_seed: int) -> None:
        self.path = Path(path) if path is not None else None
        self.clock = CheckpointClock(every_steps)
        self.run_start, self.run_steps = run_start, run_steps
        self.rng, self.val_seed = rng, val_seed
        self.t0 = time.perf_counter()
        self.last_step: int | None = None
        """The model step of the latest file written (None: none yet)."""

    def state(self, net: torch.nn.Module, generator: torch.Generator | None,
              ema_weights: dict[str, torch.Tensor] | None = None) -> RunState:
        return RunState.capture(net, self.run_start, self.run_steps, self.rng, generator,
                                self.val_seed, ema_weights)

    def periodic(self, step: int, live: LiveRun) -> CheckpointSaved | None:
        """After run step ``step`` (from 1): write a checkpoint if one is due and the run goes
        on (its end writes the model itself, :meth:`final`)."""
        if self.path is None or step >= self.run_steps or not self.clock.due(step):
            return None
        at = self.run_start + step
        best = live.best
        changes: dict[str, Any] = {
            "step": at, "optimizer_state": live.optimizer.state_dict(),
            "best_val_loss": best.val_loss,
            "best_step": best.step if best.weights is not None else at}
        state = self.state(live.net, live.generator, live.ema.state())
        return self._write(lambda: write_checkpoint(live.model, self.path, best.weights, state,
                                                    **changes), at, True)

    def final(self, model: GR2RModel) -> CheckpointSaved | None:
        """At the end of the run (finished or stopped): write the model as it is."""
        if self.path is None:
            return None
        return self._write(lambda: save_model(model, self.path), model.step,
                           model.run.unfinished is not None)

    def _write(self, write: Any, step: int, resumable: bool) -> CheckpointSaved | None:
        try:
            write()
        except OSError as exc:  # a full disk must not end the run: the model is in memory
            warnings.warn(f"Could not write the checkpoint {self.path}: {exc}", RuntimeWarning,
                          stacklevel=4)
            return None
        self.last_step = step
        return CheckpointSaved(step=step, total_steps=self.run_start + self.run_steps,
                               elapsed_s=time.perf_counter() - self.t0, path=str(self.path),
                               resumable=resumable)
