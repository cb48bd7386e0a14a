"""Generated noise for networks that see neighbouring planes (``TrainConfig.context``).

The input of such a network is a stack of ``2k + 1`` planes, ``C`` channels each, and it
denoises the centre plane (:mod:`napari_gr2r.engine.data.context`). A recorrupted-to-recorrupted
objective must recorrupt *every* plane the network sees, not only the centre: the network is
trained on inputs with ``1 + alpha^2`` times the noise variance, and applied to images with
the plain noise in every plane. Left at the plain noise, the neighbours would be the cleaner
planes during training and the network would learn to trust them more than it should at
inference, where they are as noisy as the centre.

- The centre plane's noise is GR2R's own: the network's residual with random signs, pinned
  to the noise level (:func:`~.losses.pinned_noise`), because only the centre plane has a
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

from __future__ import annotations

import torch

from ..data.context import planes_of
from ..noise.level import NoiseLevel


def model_noise(y: torch.Tensor, level: NoiseLevel, generator: torch.Generator,
                channels: int) -> torch.Tensor:
    """Noise for every plane of the stack ``y`` from the noise model (variance at each
    plane's own pixels, correlated like the noise); the same shape as ``y``."""
    from .losses import correlate_yx  # losses imports this module

    z = torch.randn(tuple(y.shape), generator=generator, device=generator.device).to(y.device)
    if level.kernel is not None:
        z = correlate_yx(z, level.kernel)
    planes = planes_of(y, channels)
    flat = planes.reshape(-1, channels, *planes.shape[3:])
    sd = level.variance(flat).sqrt().reshape(y.shape)
    return z * sd
