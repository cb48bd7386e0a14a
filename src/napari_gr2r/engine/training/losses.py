r"""Training objectives: GR2R (stable and paper forms), R2R with a known noise model, N2C.

All work on normalised batches ``y`` of shape ``(B, C, *spatial)`` and one network ``f``.

GR2R, paper equation 14 (``method="gr2r-paper"``)::

    r  = y - f(y)                        (no gradient)
    n  = r * m,   m = +-1 with p = 0.5   (generated noise, zero mean)
    y+ = y + n,   y- = y - n             (recorrupted pair)
    L  = ||f(y+) - y-||^2 + lambda_g ||f(y) - y||^2 + gamma ||f(sg[f(y)] + n) - sg[f(y)]||^2

with ``lambda_g = 1`` and ``gamma = 2``. The identity ``f(y) = y`` gives ``r = 0``, ``n = 0``
and zero loss, so this objective can slide onto the noisy input (collapse).

Stable GR2R (``method="gr2r"``, the default) keeps the residual's shape but pins its size:
per patch and channel, ``n`` is rescaled so that its mean square equals the mean of
``sigma^2(f(y))``, where ``sigma^2(x) = a x + b`` is the noise level fitted before training
(:class:`~napari_gr2r.engine.noise.level.NoiseLevel`). The identity then no longer zeroes the loss
(``n`` stays at the noise level whatever ``f`` does), and ``lambda_g`` defaults to 0.
When the noise is spatially correlated (measured before training in the flattest windows of
the data), the sign-flipped residual is filtered with a kernel of that correlation, so the
generated noise is correlated like the real noise instead of white. With
``TrainConfig.generated_noise="model"`` ``n`` is instead drawn from the noise level itself
(Gaussian, the fitted variance at each pixel, correlated with the same kernel), as R2R with an
estimated noise model would draw it: an option, since on real captures the residual's noise
trains as well or better (docs/method-notes.md).

Both can split the generated noise unevenly, as R2R does (``TrainConfig.alpha``, default 1,
the paper's pair)::

    y+ = y + alpha n,   y- = y - n / alpha

so that the network learns to denoise ``(1 + alpha^2)`` times the noise variance instead of
twice it, and the pseudo-supervised input is ``sg[f(y)] + alpha n``.

R2R (Pang et al. 2021) with known noise of standard deviation ``s``::

    y+ = y + alpha s z,   y- = y - s z / alpha,   z ~ N(0, 1),   L = ||f(y+) - y-||^2

N2C (supervised): ``L = ||f(y) - x||^2`` with the clean image ``x``.

With context (``TrainConfig.context``), ``y`` is a stack of ``2k + 1`` planes and ``f`` gives
the centre plane: every term above compares ``f``'s output with the centre plane's ``y``,
``n`` and ``f(y)``, and every plane of the input is recorrupted, the centre with GR2R's noise
and the neighbours with draws from the fitted noise model (:func:`model_noise`).

Examples
--------
The generated noise has zero mean whatever the residual:

>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> r = torch.ones(1, 1, 64, 64)
>>> n = r * rademacher(r.shape, g)
>>> abs(float(n.mean())) < 0.05
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import TrainConfig
from ..data.context import centre_copies, centre_of, planes_of, with_centre
from ..data.normalization import Normalization
from ..noise.level import NoiseLevel


def rademacher(shape: torch.Size | tuple[int, ...], generator: torch.Generator,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """Random signs, +1 or -1 with probability 1/2 each."""
    bits = torch.randint(0, 2, tuple(shape), generator=generator, device=generator.device)
    return (bits.float() * 2 - 1).to(device)


def _normal(shape: torch.Size, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=generator, device=generator.device).to(device)


def pinned_noise(residual: torch.Tensor, mask: torch.Tensor, signal: torch.Tensor,
                 noise_level: NoiseLevel) -> torch.Tensor:
    """Generated noise ``residual * mask`` rescaled to the noise level of ``signal``.

    The scale is one number per patch and channel, chosen so that the patch's noise energy is
    the one the noise model predicts for it: the residual's spatial structure (and any
    correlation in it) is kept while its size cannot shrink to zero. Energies are compared
    summed over the patch, not pixel by pixel, so that dark pixels whose predicted variance
    is close to zero cannot dominate the scale.
    """
    variance = noise_level.variance(signal)
    spatial = tuple(range(2, residual.ndim))
    noise = residual * mask
    if noise_level.kernel is not None:
        noise = correlate_yx(noise, noise_level.kernel)
    energy = noise.square().mean(dim=spatial, keepdim=True)
    expected = variance.mean(dim=spatial, keepdim=True)
    return noise * (expected / energy.clamp(min=1e-12)).sqrt()


def correlate_yx(noise: torch.Tensor, kernel: list[list[float]]) -> torch.Tensor:
    """Filter every YX plane of ``noise`` with ``kernel`` (reflected at the borders).

    White noise comes out with the spatial correlation the kernel describes and, the kernel
    having unit L2 norm, the same variance.
    """
    k = torch.as_tensor(kernel, dtype=noise.dtype, device=noise.device)
    ry, rx = k.shape[0] // 2, k.shape[1] // 2
    shape = noise.shape
    planes = noise.reshape(-1, 1, shape[-2], shape[-1])
    mode = "reflect" if min(shape[-2:]) > max(ry, rx) else "replicate"
    planes = F.pad(planes, (rx, rx, ry, ry), mode=mode)
    return F.conv2d(planes, k[None, None]).reshape(shape)


def model_noise(y: torch.Tensor, level: NoiseLevel, generator: torch.Generator,
                channels: int) -> torch.Tensor:
    """Noise for every plane of the stack ``y`` from the noise model (variance at each
    plane's own pixels, correlated like the noise); the same shape as ``y``.

    Networks that see neighbouring planes (``TrainConfig.context``): the input of such a network
    is a stack of ``2k + 1`` planes, ``C`` channels each, and it denoises the centre plane
    (:mod:`napari_gr2r.engine.data.context`). A recorrupted-to-recorrupted objective must
    recorrupt *every* plane the network sees, not only the centre: the network is trained on
    inputs with ``1 + alpha^2`` times the noise variance, and applied to images with the plain
    noise in every plane. Left at the plain noise, the neighbours would be the cleaner planes
    during training and the network would learn to trust them more than it should at inference,
    where they are as noisy as the centre.

    - The centre plane's noise is GR2R's own: the network's residual with random signs, pinned
      to the noise level (:func:`pinned_noise`), because only the centre plane has a
      residual (the network's output is that plane's).
    - The neighbours' noise is drawn from the noise model fitted before training (Gaussian with
      the fitted variance ``a * y + b`` of each neighbour's own pixels, correlated with the
      fitted kernel when the noise is correlated). The variance function being affine in the
      intensity, evaluating it at the noisy value is unbiased; a residual of a neighbour would
      take one more forward pass per neighbour, centred on it, for each step.
    - A slot that holds the centre plane itself (a stack shorter than the window reflects back
      onto the centre; a single plane is its own context) gets the centre's noise: its base noise
      *is* the centre's, and independent recorruption would let the network read the target's
      noise off it.
    """
    z = torch.randn(tuple(y.shape), generator=generator, device=generator.device).to(y.device)
    if level.kernel is not None:
        z = correlate_yx(z, level.kernel)
    planes = planes_of(y, channels)
    flat = planes.reshape(-1, channels, *planes.shape[3:])
    sd = level.variance(flat).sqrt().reshape(y.shape)
    return z * sd


@dataclass
class StepResult:
    """What one evaluation of an objective gives."""

    loss: torch.Tensor
    terms: dict[str, float]
    residual_energy: float | None


class Objective:
    """Base class: ``__call__(net, y, target, generator) -> StepResult``."""

    term_names: tuple[str, ...] = ("loss",)

    def __call__(self, net: nn.Module, y: torch.Tensor, target: torch.Tensor | None,
                 generator: torch.Generator) -> StepResult:
        raise NotImplementedError


class GR2RLoss(Objective):
    """Generative recorrupted-to-recorrupted loss (see the module docstring).

    The passes that need a gradient go through the network as one concatenated batch.
    """

    term_names = ("unsupervised", "regular", "pseudo")

    def __init__(self, gamma: float, lambda_g: float, noise_level: NoiseLevel | None,
                 alpha: float = 1.0, channels: int | None = None,
                 neighbour_level: NoiseLevel | None = None, from_model: bool = False) -> None:
        self.gamma, self.lambda_g, self.noise_level = gamma, lambda_g, noise_level
        self.alpha = alpha
        # the generated noise drawn from the noise model instead of the residual
        # (``TrainConfig.generated_noise="model"``; needs ``noise_level``)
        self.from_model = from_model
        # with context (inputs of more than ``channels`` channels): the noise model the
        # neighbouring planes' noise is drawn from (see :func:`model_noise`)
        self.channels, self.neighbour_level = channels, neighbour_level

    def __call__(self, net: nn.Module, y: torch.Tensor, target: torch.Tensor | None,
                 generator: torch.Generator) -> StepResult:
        c = self.channels
        y0 = y if c is None else centre_of(y, c)
        context = y0 is not y
        with torch.no_grad():
            fy = net(y)
            residual = y0 - fy
            if self.from_model:
                assert self.noise_level is not None
                noise = model_noise(y0, self.noise_level, generator, y0.shape[1])
            else:
                mask = rademacher(y0.shape, generator, y.device)
                noise = residual * mask if self.noise_level is None else \
                    pinned_noise(residual, mask, fy, self.noise_level)
            if context:
                assert c is not None
                assert self.neighbour_level is not None
                copies = centre_copies(y, c)
                around = with_centre(model_noise(y, self.neighbour_level, generator, c),
                                     noise, copies, c)
        alpha = self.alpha
        inputs = [y + alpha * (around if context else noise)]
        if self.lambda_g > 0:
            inputs.append(y)
        if self.gamma > 0:
            pseudo = fy + alpha * noise
            # the neighbours as in the recorrupted input; only the centre is the estimate
            inputs.append(with_centre(inputs[0], pseudo, copies, c) if context else pseudo)
        outputs = net(torch.cat(inputs)).split(y.shape[0])
        l_u = F.mse_loss(outputs[0], y0 - noise / alpha)
        loss = l_u
        terms = {"unsupervised": float(l_u.detach())}
        k = 1
        if self.lambda_g > 0:
            l_g = F.mse_loss(outputs[k], y0)
            loss = loss + self.lambda_g * l_g
            terms["regular"] = float(l_g.detach())
            k += 1
        if self.gamma > 0:
            l_s = F.mse_loss(outputs[k], fy)
            loss = loss + self.gamma * l_s
            terms["pseudo"] = float(l_s.detach())
        return StepResult(loss, terms, float(residual.square().mean()))


class R2RLoss(Objective):
    """Recorrupted-to-recorrupted with a known (Gaussian or Poisson-Gaussian) noise level."""

    term_names = ("unsupervised",)

    def __init__(self, noise_level: NoiseLevel, alpha: float, channels: int | None = None,
                 ) -> None:
        self.noise_level, self.alpha, self.channels = noise_level, alpha, channels

    def __call__(self, net: nn.Module, y: torch.Tensor, target: torch.Tensor | None,
                 generator: torch.Generator) -> StepResult:
        if self.channels is not None and y.shape[1] != self.channels:
            loss = recorrupted_stack_mse(net, y, self.noise_level, generator, self.alpha,
                                         self.channels)
            return StepResult(loss, {"unsupervised": float(loss.detach())}, None)
        sd = self.noise_level.variance(y).sqrt()
        z = _normal(y.shape, generator, y.device) * sd
        loss = F.mse_loss(net(y + self.alpha * z), y - z / self.alpha)
        return StepResult(loss, {"unsupervised": float(loss.detach())}, None)


class N2CLoss(Objective):
    """Supervised Noise2Clean: mean squared error to the clean target."""

    term_names = ("supervised",)

    def __call__(self, net: nn.Module, y: torch.Tensor, target: torch.Tensor | None,
                 generator: torch.Generator) -> StepResult:
        if target is None:
            raise ValueError("method='n2c' needs a clean target")
        loss = F.mse_loss(net(y), target)
        return StepResult(loss, {"supervised": float(loss.detach())}, None)


class RecorruptedValidation(Objective):
    """Validation criterion of the self-supervised methods: ``||f(y + a n) - (y - n / a)||^2``.

    ``n`` is drawn from the noise model estimated before training (its variance, and its
    correlation when the noise is correlated), with the fixed draws of the validation seed. It
    does not depend on the network, so values are comparable from one validation to the next
    (a GR2R loss is not: its noise comes from the network's own residual), and when ``n`` is
    distributed like the real noise it equals the network's squared error against the clean
    image at ``1 + a^2`` times the noise variance, plus a constant (``a``: the objective's
    ``alpha``). The identity scores ``(a + 1/a)^2 sigma^2``, above any denoiser (a perfect one
    scores ``(1 + 1/a^2) sigma^2``), so the weights kept as the best are not a collapsed
    network.
    """

    term_names = ("validation",)

    def __init__(self, noise_level: NoiseLevel, alpha: float = 1.0,
                 channels: int | None = None) -> None:
        self.noise_level, self.alpha, self.channels = noise_level, alpha, channels

    def __call__(self, net: nn.Module, y: torch.Tensor, target: torch.Tensor | None,
                 generator: torch.Generator) -> StepResult:
        if self.channels is not None and y.shape[1] != self.channels:
            loss = recorrupted_stack_mse(net, y, self.noise_level, generator, self.alpha,
                                         self.channels)
            return StepResult(loss, {"validation": float(loss.detach())}, None)
        z = _normal(y.shape, generator, y.device)
        if self.noise_level.kernel is not None:
            z = correlate_yx(z, self.noise_level.kernel)
        n = z * self.noise_level.variance(y).sqrt()
        loss = F.mse_loss(net(y + self.alpha * n), y - n / self.alpha)
        return StepResult(loss, {"validation": float(loss.detach())}, None)


def recorrupted_stack_mse(net: nn.Module, y: torch.Tensor, level: NoiseLevel,
                          generator: torch.Generator, alpha: float, channels: int,
                          ) -> torch.Tensor:
    """``||f(y + a n) - (y0 - n0 / a)||^2`` for a stack of planes ``y`` (context): ``n`` drawn
    from ``level`` for every plane (:func:`model_noise`), ``y0`` and ``n0`` the
    centre plane's."""
    n = model_noise(y, level, generator, channels)
    n0 = centre_of(n, channels)
    n = with_centre(n, n0, centre_copies(y, channels), channels)
    return F.mse_loss(net(y + alpha * n), centre_of(y, channels) - n0 / alpha)


def known_noise_level(config: TrainConfig, norm: Normalization) -> NoiseLevel:
    """The noise model given in ``config`` (input intensity units), in normalised units."""
    sigma = float(config.noise_sigma or 0.0)
    gain = float(config.noise_gain or 0.0) if config.noise_model == "poisson-gaussian" else 0.0
    offset = float(config.noise_offset)
    a, b = [], []
    for c in range(len(norm.low)):
        scale = norm.scale(c)
        # var_raw = gain * (x_raw - offset) + sigma^2 with x_raw = x * scale + low
        base = sigma**2 + gain * (norm.low[c] - offset)
        a.append(gain / scale)
        b.append(max(base, 0.5 * sigma**2, 1e-12) / scale**2)
    return NoiseLevel(a, b, [x + y * 0.25 for x, y in zip(b, a)])


def build_objective(config: TrainConfig, norm: Normalization,
                    estimated: NoiseLevel) -> Objective:
    """The objective a config asks for."""
    channels = len(norm.low)
    if config.method in ("gr2r", "gr2r-paper"):
        generated = estimated if config.noise_scale == 1 else \
            estimated.scaled(config.noise_scale)
        return GR2RLoss(
            gamma=config.resolved_gamma,
            lambda_g=config.resolved_lambda_g,
            noise_level=generated if config.resolved_pin_noise or
            config.generated_noise == "model" else None,
            alpha=config.resolved_alpha,
            channels=channels, neighbour_level=generated,
            from_model=config.generated_noise == "model",
        )
    if config.method == "r2r":
        return R2RLoss(known_noise_level(config, norm), config.r2r_alpha, channels)
    return N2CLoss()


def build_validation(config: TrainConfig, objective: Objective,
                     estimated: NoiseLevel) -> Objective:
    """The criterion held-out patches are scored by, to keep the best weights.

    ``n2c`` and ``r2r`` use their own objective (with fixed draws, it does not depend on the
    network); GR2R uses :class:`RecorruptedValidation` with the estimated noise.
    """
    if config.method in ("gr2r", "gr2r-paper"):
        return RecorruptedValidation(estimated, config.resolved_alpha, len(estimated.a))
    return objective
