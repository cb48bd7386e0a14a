"""What a training run checks as it goes: the held-out score, the best weights, the collapse watch.

- :class:`Validator` scores a network on the held-out patches: the validation loss (with fixed
  random draws), the residual energy and the estimated PSNR (:func:`~.risk.patch_mse`).
- :class:`BestWeights` keeps the weights with the lowest validation loss.
- :class:`CollapseWatch` follows the residual energy and says, once, when the network slides
  towards the identity (its output turning into its noisy input).
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..data.context import centre_of
from ..noise.level import NoiseLevel
from ..noise.refit import VarianceCurve
from ..quality.risk import patch_mse
from .events import CollapseDetected
from .losses import Objective

RISK_PROBES = 2
"""Monte-Carlo probes of the estimated PSNR at each validation."""


class CollapseWarning(UserWarning):
    """Training is converging to the identity: the output is the noisy input."""


def torch_generator(device: torch.device, seed: int) -> torch.Generator:
    """A generator for random draws on ``device`` (CUDA's own there, else the CPU's)."""
    gen_device = device if device.type == "cuda" else torch.device("cpu")
    return torch.Generator(device=gen_device).manual_seed(int(seed))


@dataclass
class Score:
    """A validation: loss, residual energy and estimated PSNR (dB, normalised range of 1; None
    where the estimated error is not above zero, which no PSNR describes)."""

    loss: float
    energy: float
    psnr: float | None


class Validator:
    """Scores networks on the held-out batches (empty: no validation)."""

    def __init__(self, batches: list[list[torch.Tensor]], validation: Objective,
                 risk_noise: tuple[NoiseLevel, VarianceCurve | None], device: torch.device,
                 seed: int) -> None:
        self.batches, self.validation = batches, validation
        self.risk_noise, self.device, self.seed = risk_noise, device, seed

    def __bool__(self) -> bool:
        return bool(self.batches)

    def score(self, net: torch.nn.Module) -> Score:
        """``net``'s score, with the same random draws at every call; ``net`` is left in
        evaluation mode (the caller sets the mode it trains in)."""
        gen = torch_generator(self.device, self.seed)
        losses, energies = [], []
        net.eval()
        with torch.no_grad():
            for arrays in self.batches:
                y = arrays[0].to(self.device)
                t = arrays[1].to(self.device) if len(arrays) > 1 else None
                result = self.validation(net, y, t, gen)
                losses.append(float(result.loss.detach()))
                fy = net(y)  # the centre plane's, with context
                energies.append(float((centre_of(y, fy.shape[1]) - fy).square().mean()))
            level, curve = self.risk_noise
            mse = patch_mse(net, [a[0].to(self.device) for a in self.batches], level, curve,
                            probes=RISK_PROBES, seed=self.seed)
        return Score(float(np.mean(losses)), float(np.mean(energies)),
                     -10 * math.log10(mse) if mse > 0 else None)


class BestWeights:
    """The weights with the lowest validation loss so far (copies), and their step."""

    def __init__(self, val_loss: float | None, weights: dict[str, torch.Tensor] | None,
                 step: int) -> None:
        self.val_loss, self.weights, self.step = val_loss, weights, step

    def offer(self, val_loss: float, net: torch.nn.Module, step: int) -> bool:
        """Keep ``net``'s weights if ``val_loss`` is the lowest yet; True when kept."""
        if self.val_loss is not None and val_loss >= self.val_loss:
            return False
        self.val_loss, self.step = val_loss, step
        self.weights = copy.deepcopy(net.state_dict())
        return True


class CollapseWatch:
    """Reports, once, a residual energy that falls below ``fraction`` of the noise variance.

    The energy is smoothed over progress events; the first tenth of the run is not judged
    (the network starts near the identity only by accident of its initial weights).
    """

    def __init__(self, noise_variance: float, fraction: float, run_steps: int) -> None:
        self.noise_variance = noise_variance
        self.threshold = fraction * noise_variance
        self.grace = run_steps // 10
        self.energy: float | None = None
        self.collapsed = False

    def update(self, energy: float, step: int, at: int, total_steps: int,
               elapsed_s: float) -> CollapseDetected | None:
        """After a progress event at run step ``step`` (model step ``at``): the event to
        report when training is collapsing now (it also warns :class:`CollapseWarning`)."""
        self.energy = energy if self.energy is None else 0.7 * self.energy + 0.3 * energy
        if self.collapsed or step <= self.grace or self.energy >= self.threshold:
            return None
        self.collapsed = True
        message = (
            f"Training is collapsing onto the noisy input at step {at}: the network's output "
            f"differs from its input by {self.energy:.2e} (mean square), far below the "
            f"estimated noise variance {self.noise_variance:.2e}. Use method='gr2r' (the "
            "stable default) or fewer steps; the best weights are kept."
        )
        warnings.warn(message, CollapseWarning, stacklevel=4)
        return CollapseDetected(step=at, total_steps=total_steps, elapsed_s=elapsed_s,
                                residual_energy=self.energy,
                                noise_variance=self.noise_variance, message=message)
