"""Checkpoints of a training run in progress, and what resuming it needs.

A checkpoint is an ordinary model file (:func:`~napari_gr2r.engine.save_model`): it holds the
best weights so far, so it loads and denoises like a finished model, plus a ``training`` entry
with what continuing the run needs (:class:`RunState`): the current weights, where the run
started and how long it was planned to be, the states of the random generators and the seed of
the held-out patches. Everything is a plain type or a tensor, so the file loads with
``torch.load(weights_only=True)``; it is written atomically, so a process killed at any moment
leaves the previous checkpoint (or the new one) whole.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError
from ..model.checkpoint import save_model
from ..model.model import GR2RModel
from .events import CheckpointSaved

CHECKPOINT_INTERVAL_S = 120.0
"""Seconds of training between checkpoints when ``TrainConfig.checkpoint_every`` is None.

A step costs from a few milliseconds (the ``fast`` network on a GPU) to seconds (the
``quality`` network on a CPU), so no fixed step count means "every two minutes" everywhere;
a clock does. Writing one (weights, best weights, optimiser, fsync) took 36 ms for the
``fast`` network (1.9 MB) and 216 ms for the ``quality`` one (70 MB) on a busy 2-core CPU
(``python -m benchmarks.preset_cost --checkpoint-writes``).
"""

RUN_STATE_VERSION = 1


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


@dataclass
class RunState:
    """Where an unfinished training run stands, beyond what a model file holds anyway.

    Attributes
    ----------
    run_start : int
        The model's step when the run began (0 for a new model).
    run_steps : int
        Steps the run was planned to take; it ends at step ``run_start + run_steps``.
    weights : dict
        The network's current weights (the model file's own weights are the best so far).
    numpy_rng : dict
        State of the generator that draws the training patches.
    torch_rng : torch.Tensor or None
        State of the generator of the objective's random draws; ``torch_rng_device`` says
        whose (``"cpu"`` or ``"cuda"``); a run resumed on another kind of device reseeds it.
    val_seed : int
        Seed of the held-out patches, so that the resumed run scores on the same ones.
    ema_weights : dict or None
        The moving average of the weights (``TrainConfig.ema_decay``), if the run keeps one.
    """

    run_start: int
    run_steps: int
    weights: dict[str, torch.Tensor]
    numpy_rng: dict[str, Any]
    torch_rng: torch.Tensor | None
    torch_rng_device: str
    val_seed: int
    ema_weights: dict[str, torch.Tensor] | None = None

    @classmethod
    def capture(cls, net: torch.nn.Module, run_start: int, run_steps: int,
                rng: np.random.Generator, generator: torch.Generator | None,
                val_seed: int, ema_weights: dict[str, torch.Tensor] | None = None) -> RunState:
        """The state of a run now (copies, on the CPU)."""
        return cls(
            run_start=int(run_start), run_steps=int(run_steps),
            weights={k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
            numpy_rng=copy.deepcopy(rng.bit_generator.state),
            torch_rng=generator.get_state().cpu() if generator is not None else None,
            torch_rng_device=generator.device.type if generator is not None else "cpu",
            val_seed=int(val_seed), ema_weights=ema_weights,
        )

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["weights"] = dict(self.weights)  # asdict deep-copies tensors; keep them
        if self.ema_weights is not None:
            values["ema_weights"] = dict(self.ema_weights)
        values["version"] = RUN_STATE_VERSION
        return values

    @classmethod
    def from_dict(cls, values: Any, source: str = "the model") -> RunState:
        """Rebuild from :meth:`to_dict` (raises :class:`CheckpointError` when it does not fit)."""
        try:
            if int(values.get("version", 0)) > RUN_STATE_VERSION:
                raise CheckpointError(
                    f"The training state in {source} was written by a newer napari-gr2r; "
                    "upgrade napari-gr2r to resume it."
                )
            names = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in values.items() if k in names})
        except (AttributeError, TypeError, ValueError) as exc:
            raise CheckpointError(f"The training state in {source} is damaged: {exc}") from None

    def restore_rng(self, rng: np.random.Generator) -> None:
        """Put the patch generator back where the run left it (in place: samplers share it)."""
        rng.bit_generator.state = self.numpy_rng

    def restore_generator(self, generator: torch.Generator) -> bool:
        """Put the objective's generator back; False when it was another kind of device's."""
        if self.torch_rng is None or generator.device.type != self.torch_rng_device:
            return False
        generator.set_state(self.torch_rng)
        return True


def run_state_of(model: GR2RModel, source: str = "the model") -> RunState | None:
    """The unfinished run a model carries (loaded from a checkpoint), or None."""
    values = getattr(model, "training_state", None)
    return None if values is None else RunState.from_dict(values, source)


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
    snapshot = dataclasses.replace(
        model, net=net, history=list(model.history),
        training_state=state.to_dict() if state is not None else None, **changes,
    )
    return save_model(snapshot, path)


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

    def periodic(self, step: int, model: GR2RModel, net: torch.nn.Module,
                 generator: torch.Generator, best_weights: dict[str, torch.Tensor] | None,
                 optimizer: torch.optim.Optimizer,
                 ema_weights: Callable[[], dict[str, torch.Tensor] | None] | None = None,
                 **changes: Any) -> CheckpointSaved | None:
        """After run step ``step`` (from 1): write a checkpoint if one is due and the run goes
        on (its end writes the model itself, :meth:`final`). ``ema_weights``: gives the moving
        average of the weights, if the run keeps one (called only when writing). ``changes``:
        the model's fields as they stand now (``best_val_loss``, ``best_step``)."""
        if self.path is None or step >= self.run_steps or not self.clock.due(step):
            return None
        at = self.run_start + step
        changes["optimizer_state"] = optimizer.state_dict()
        if best_weights is None:
            changes["best_step"] = at
        state = self.state(net, generator, ema_weights() if ema_weights is not None else None)
        return self._write(lambda: write_checkpoint(model, self.path, best_weights, state,
                                                    step=at, **changes), at, True)

    def final(self, model: GR2RModel) -> CheckpointSaved | None:
        """At the end of the run (finished or stopped): write the model as it is."""
        if self.path is None:
            return None
        return self._write(lambda: save_model(model, self.path), model.step,
                           model.training_state is not None)

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
