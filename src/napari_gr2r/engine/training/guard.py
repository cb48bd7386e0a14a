"""Keeping a run that blows up from wasting the rest of its budget.

A network trained long on one small image at a learning rate its data no longer tolerates can
diverge: within a few steps its loss grows by orders of magnitude and the weights land far
from where they were, and Adam's moment estimates, filled with the blow-up's gradients, keep
them there for the rest of the run. The best weights are kept whatever happens (by the
validation loss), but the steps after the blow-up are lost, and a run without validation ends
on the wrecked weights.

:class:`DivergenceGuard` does two things:

- after the all-reduce of the gradients (identical on every process), a step whose gradients
  are not finite is skipped: the weights stay those of the step before. When steps keep failing
  that way the run recovers as below, or, without best weights to go back to, ends with
  :class:`~napari_gr2r.engine.errors.NumericalError`.
- a step whose loss is :data:`SPIKE` times the median of the last :data:`SPIKE_WINDOW` steps'
  (on any process) is skipped too. Such a batch brings a gradient thousands of times the usual
  one, and Adam, whose second-moment estimate has not seen it yet, turns it into a step dozens
  of times the usual size: one batch wrecks weights that were fine. Batches of ordinary images
  stay within a few times the median. Losses that stay that high (the weights, not one batch,
  went wrong) make the run recover as below; without best weights to go back to the run takes
  the step and measures its losses afresh.
- after each validation, a validation loss above :data:`RISE` times the best one kept means the
  run has left the weights it had reached: every process goes back to the best weights (rank
  0's), Adam starts afresh, and the learning rate is halved for the rest of the run. It warns
  :class:`DivergenceWarning`. After :data:`MAX_RECOVERIES` recoveries the run stops there, with
  the best weights (a finished run: going on at an ever smaller rate would gain nothing).

A slow rise of the validation loss (overfitting one capture) stays well under :data:`RISE`:
the best weights, not the guard, handle it. So does a blow-up that costs several dB but raises
the validation loss by a few percent only (most of that loss is the noise's own share): the
loss-spike rule above is what keeps such a blow-up from happening.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections import deque
from typing import Any

import torch

from ..errors import NumericalError

RISE = 1.5
"""A validation loss this many times the best one kept is a divergence, not noise."""

MAX_RECOVERIES = 3
"""Recoveries after which the run stops with its best weights."""

MAX_SKIPPED = 5
"""Consecutive skipped steps (non-finite gradients, or loss spikes) after which the run goes back
to its best weights (or fails, for non-finite gradients without any)."""

SPIKE = 20.0
"""A step whose loss is this many times the recent median is an outlier batch, not learning."""

SPIKE_WINDOW = 25
"""The steps whose median loss a step is compared with (none before there are this many)."""


class DivergenceWarning(RuntimeWarning):
    """The run diverged and went on from its best weights at a lower learning rate."""


class DivergenceGuard:
    """A run's recoveries so far and the learning rate's factor they left."""

    def __init__(self) -> None:
        self.lr_factor = 1.0
        self.recoveries = 0
        self.skipped = 0
        self.recent: deque[float] = deque(maxlen=SPIKE_WINDOW)
        self.exhausted = False
        """True once :data:`MAX_RECOVERIES` recoveries were made: the run should stop."""

    # --------------------------------------------------------------------------- per step
    def step_is_sound(self, trainer: Any, loop: Any, at: int, lr: float, loss: float,
                      check_gradients: bool = True) -> bool:
        """Whether the step at model step ``at``, whose loss on this process is ``loss``, may
        update the weights: False (skip it) when a gradient is NaN or infinite
        (``check_gradients``) or the loss is a spike on any process. After
        :data:`MAX_SKIPPED` such steps in a row the run goes back to its best weights;
        without any (or past :data:`MAX_RECOVERIES`) non-finite gradients fail with
        :class:`NumericalError`, and spikes are taken as the loss's new level."""
        finite = not check_gradients or _finite_gradients(trainer.net)
        spike = finite and math.isfinite(loss) and len(self.recent) == SPIKE_WINDOW and \
            loss > SPIKE * statistics.median(self.recent)
        spike = trainer.world.any(spike, trainer.device)
        if finite and not spike:
            self.skipped = 0
            self.recent.append(loss)
            return True
        self.skipped += 1
        if self.skipped < MAX_SKIPPED:
            return False
        self.skipped = 0
        can_recover = not self.exhausted and trainer.world.broadcast(
            loop.best.weights is not None)
        if not finite and not can_recover:
            raise NumericalError(
                f"The loss became NaN or infinite at step {at} and the {MAX_SKIPPED - 1} steps "
                f"before: training diverged. Lower the learning rate (lr={lr:g} now); the "
                "best weights so far are kept.")
        self.recent.clear()
        if not can_recover:
            return True  # nothing to go back to: the losses' level moved, measured afresh
        self.recover(trainer, loop, at, "the loss became NaN or infinite" if not finite else
                     f"the loss stayed above {SPIKE:g} times its recent median for "
                     f"{MAX_SKIPPED} steps")
        return False

    # --------------------------------------------------------------------- per validation
    @staticmethod
    def diverged(val_loss: float, best_loss: float | None) -> bool:
        """Whether ``val_loss`` says the run left its best weights far behind."""
        if best_loss is None:
            return False
        return not math.isfinite(val_loss) or val_loss > RISE * max(best_loss, 0.0)

    def recover(self, trainer: Any, loop: Any, at: int, why: str) -> None:
        """Every process back to rank 0's best weights, Adam afresh, half the learning rate;
        rank 0 warns, saying ``why``."""
        best = loop.best
        if best.weights is not None:  # rank 0
            trainer.net.load_state_dict(best.weights)
        trainer.world.share_weights(trainer.net)
        loop.ema.restart(trainer.net)
        loop.optimizer.state.clear()
        self.recent.clear()
        self.recoveries += 1
        self.lr_factor *= 0.5
        self.exhausted = self.recoveries >= MAX_RECOVERIES
        if not trainer.world.is_main:
            return
        then = ("it stops there with those weights" if self.exhausted else
                f"it goes on from them at {self.lr_factor:g} times the learning rate")
        warnings.warn(f"Training diverged at step {at}: {why}; back to the best weights (step "
                      f"{best.step}), {then}.", DivergenceWarning, stacklevel=4)


def _finite_gradients(net: torch.nn.Module) -> bool:
    grads = [p.grad.detach().sum() for p in net.parameters() if p.grad is not None]
    return not grads or bool(torch.isfinite(torch.stack(grads).sum()))
