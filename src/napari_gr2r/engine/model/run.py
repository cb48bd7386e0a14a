"""A model's training run as data: how far it went, its history and best weights, and, for a run
that has not finished, what resuming it needs.

:class:`RunRecord` is the bookkeeping a :class:`~napari_gr2r.engine.model.model.GR2RModel`
carries; :class:`RunState` is the part only an unfinished run has. Both hold plain types and
tensors, so a model file that stores them loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError

RUN_STATE_VERSION = 1


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

    @property
    def end(self) -> int:
        """The model step the run ends at."""
        return self.run_start + self.run_steps

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
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["weights"] = dict(self.weights)  # no deep copy of the tensors
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


@dataclass
class RunRecord:
    """A model's training bookkeeping.

    Attributes
    ----------
    step : int
        Optimiser steps taken so far.
    history : list of dict
        One row of numbers per progress event (loss, validation loss, learning rate, ...).
    optimizer_state : dict or None
        Adam's state, so that training the model further goes on smoothly.
    best_step, best_val_loss : int, float or None
        The step whose weights the model holds (the best on the held-out patches) and its
        validation loss (None without validation).
    unfinished : RunState or None
        What resuming an unfinished run needs: set by a checkpoint written while training ran,
        or by a stopped run; None once a run is done.
    """

    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    optimizer_state: dict[str, Any] | None = None
    best_step: int = 0
    best_val_loss: float | None = None
    unfinished: RunState | None = None

    @property
    def end(self) -> int:
        """The step the current run ends at: the unfinished run's end, else ``step``."""
        return self.unfinished.end if self.unfinished is not None else self.step

    def snapshot(self, **changes: Any) -> RunRecord:
        """A copy whose history is its own (changes replace fields)."""
        return dataclasses.replace(self, history=list(self.history), **changes)
