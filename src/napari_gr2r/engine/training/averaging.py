"""Exponential moving average of a network's weights during training.

The averaged weights are what training validates, keeps and returns when
``TrainConfig.ema_decay`` is set: a short run's last steps at a still-large learning rate
leave the weights scattered around a minimum; their average sits closer to it.
"""

from __future__ import annotations

import copy

import torch


class WeightAverage:
    """The moving average of ``net``'s weights, ``decay`` per step (None: no averaging).

    Until step ``n = 1 / (1 - decay)`` the decay is ``1 - 1 / n``: the plain mean of the
    weights so far, so that the average owes nothing to the random initial weights; from
    there on each step weighs ``1 - decay``.
    ``done`` is the number of steps the run has already taken (a resumed run), ``weights``
    the average it had then.
    """

    def __init__(self, net: torch.nn.Module, decay: float | None, done: int = 0,
                 weights: dict[str, torch.Tensor] | None = None) -> None:
        self.decay = decay
        self.steps = int(done)
        self._net = net
        self._average: torch.nn.Module | None = None
        if decay is not None:
            self._average = copy.deepcopy(net)
            if weights is not None:
                self._average.load_state_dict(weights)
            for p in self._average.parameters():
                p.requires_grad_(False)

    @property
    def net(self) -> torch.nn.Module:
        """The averaged network (the trained one itself without averaging)."""
        return self._net if self._average is None else self._average

    def update(self, net: torch.nn.Module) -> None:
        """After an optimiser step of ``net``."""
        if self._average is None:
            return
        self.steps += 1
        decay = min(self.decay, 1.0 - 1.0 / self.steps)
        with torch.no_grad():
            for avg, cur in zip(self._average.parameters(), net.parameters()):
                avg.lerp_(cur.detach(), 1.0 - decay)
            for avg, cur in zip(self._average.buffers(), net.buffers()):
                avg.copy_(cur)

    def restart(self, net: torch.nn.Module) -> None:
        """Average from ``net``'s weights on (a run sent back to earlier weights)."""
        if self._average is not None:
            self._average.load_state_dict(net.state_dict())

    def state(self) -> dict[str, torch.Tensor] | None:
        """The averaged weights (copies, on the CPU), or None without averaging."""
        if self._average is None:
            return None
        return {k: v.detach().cpu().clone() for k, v in self._average.state_dict().items()}
