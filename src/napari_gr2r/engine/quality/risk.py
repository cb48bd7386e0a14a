"""The error estimate's pieces shared by training and :mod:`~napari_gr2r.engine.quality.estimate`.

The noise terms of the generalised SURE (see :mod:`~napari_gr2r.engine.quality.estimate`): each pixel's
noise variance from the local mean of the data, seeded Monte-Carlo probes with the noise's
covariance, and :func:`patch_mse`, the estimate on a network's own normalised patches, which
training reports at every validation as ``estimated_psnr``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data.context import centre_copies, centre_of, with_centre
from ..data.normalization import Normalization
from ..noise.level import NoiseLevel
from ..noise.local import box_mean
from ..noise.refit import VarianceCurve

EPSILON = 0.01
"""Probe step as a fraction of the noise's standard deviation."""


def variance_map(block: np.ndarray, level: NoiseLevel, norm: Normalization,
                  curve: VarianceCurve | None) -> np.ndarray:
    """Noise variance of each pixel (input units) from the local 5x5 mean of the data."""
    local = box_mean(torch.from_numpy(norm.apply(block)))
    if curve is None:
        var = level.variance(local[None], channel_axis=1)[0].numpy()
    else:
        local = local.numpy()
        var = np.stack([curve(local[c], c) for c in range(local.shape[0])])
    scales = np.asarray([norm.scale(c) for c in range(block.shape[0])], np.float32)
    return (var * scales.reshape(-1, 1, 1, 1) ** 2).astype(np.float32)


def correlated_normal(shape: tuple[int, ...], kernel: list[list[float]] | None,
                      gen: torch.Generator) -> torch.Tensor:
    """Gaussian noise of unit variance with the correlation ``kernel`` makes, the same at
    every pixel: white noise drawn beyond the borders by the kernel's radius, then filtered
    (no reflection, which would correlate the noise near the borders with itself)."""
    if kernel is None:
        return torch.randn(shape, generator=gen)
    k = torch.as_tensor(kernel, dtype=torch.float32)
    ry, rx = k.shape[0] // 2, k.shape[1] // 2
    ny, nx = shape[-2:]
    w = torch.randn((int(np.prod(shape[:-2], dtype=np.int64)), 1, ny + 2 * ry, nx + 2 * rx),
                    generator=gen)
    return F.conv2d(w, k[None, None]).reshape(shape)


def probe(sd: np.ndarray, kernel: list[list[float]] | None,
          gen: torch.Generator) -> np.ndarray:
    w = correlated_normal(sd.shape, kernel, gen)
    return (w.numpy() * sd).astype(np.float32)


def patch_mse(net: torch.nn.Module, batches: list[torch.Tensor], level: NoiseLevel,
              curve: VarianceCurve | None = None, probes: int = 2, seed: int = 0,
              epsilon: float = EPSILON, margin: int = 0) -> float:
    """Estimated mean squared error of ``net`` on normalised patches ``(B, C, ...)``: zero or
    below where the residual is smaller than the noise the probes predict (the estimate cannot
    tell the error from zero; the caller reports no value).

    The estimate of :func:`~napari_gr2r.engine.quality.estimate.assess` with the network applied to each
    patch whole (no tiling), with fixed probes (``seed``), so values from one training step to
    the next compare. The ``margin`` pixels along each patch's YX border, where the network lacks
    the context it has inside an image, are perturbed but not counted. Patches of a network
    with context (more channels in than out: neighbouring planes) are assessed on their
    centre plane, the one the network denoises; only its noise enters Stein's lemma, so only
    it is perturbed (with the slots that are copies of it).
    """
    gen = torch.Generator().manual_seed(int(seed))
    total, count = 0.0, 0
    with torch.no_grad():
        for stack in batches:
            fy = net(stack)
            channels = fy.shape[1]
            y = centre_of(stack, channels)
            copies = None if y is stack else centre_copies(stack, channels)
            device = y.device
            ny, nx = y.shape[-2:]
            my, mx = min(margin, (ny - 1) // 2), min(margin, (nx - 1) // 2)
            inner = (..., slice(my, ny - my), slice(mx, nx - mx))
            local = box_mean(y.detach().float().cpu())
            if curve is None:
                var = level.variance(local, channel_axis=1)
            else:
                var = torch.from_numpy(np.stack(
                    [curve(local[:, c].numpy(), c) for c in range(y.shape[1])], axis=1)
                ).to(local.dtype)
            var = var.to(device)
            sd = var.sqrt()
            est = float((fy - y)[inner].square().sum() - var[inner].sum())
            div = 0.0
            for _ in range(probes):
                c = (correlated_normal(tuple(y.shape), level.kernel, gen) * sd).to(device)
                moved = y + epsilon * c if copies is None else \
                    with_centre(stack, y + epsilon * c, copies, channels)
                div += float((c * (net(moved) - fy))[inner].sum()) / epsilon
            total += est + 2 * div / probes
            count += fy[inner].numel()
    return total / max(count, 1)
