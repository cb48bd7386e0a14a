"""The end of a run that keeps the input's brightness (``TrainConfig.keep_mean``).

A denoiser removes zero-mean noise, so over many pixels its output should average what its
input does. A network adapted from the pretrained prior can miss that by a few per cent
(the prior's brightness carried onto an image the short adaptation does not fully undo), and
for a quantitative image a brighter or darker result is an error of its own. At the end of
such a run each network's output is shifted, channel by channel, by the mean of what it took
from its input on the held-out patches and on patches drawn afresh from the whole training
data (the held-out ones alone come from one strip of the image, whose content need not be the
image's): the offset goes into the bias of its last convolution, so the model file, its
export and every way of denoising carry it at no cost.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.context import centre_of
from ..model.networks import unets

SHIFT_BATCH, SHIFT_BATCHES = 8, 8
"""Training patches drawn to measure the shift: batches of this many, this many batches."""


def denoised_patch(unet: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """``unet(y)`` with Y and X mirrored outwards by its receptive radius first and cropped
    back, as denoising mirrors an image's border: a patch's own edges would otherwise darken or
    brighten its output where the network reads past them, which no denoised image has."""
    b = min(int(getattr(unet, "receptive_radius", 0)), y.shape[-1] - 1, y.shape[-2] - 1)
    if b <= 0:
        return unet(y).float()
    pads = [b, b, b, b] + [0, 0] * (y.dim() - 4)
    out = unet(F.pad(y, pads, mode="reflect"))
    return out[..., b:out.shape[-2] - b, b:out.shape[-1] - b].float()


def keep_mean(net: nn.Module, batches: list[list[torch.Tensor]], device: torch.device
              ) -> list[list[float]]:
    """Shift each U-Net of ``net`` (in place) so that its mean output over the noisy patches
    of ``batches`` (the centre plane's, with context) equals theirs, per channel; the offsets
    added, in normalised units, one list per network (none where ``batches`` is empty).

    Pixels whose difference lies more than ``TRIM`` robust standard deviations from the median
    difference are left out of that mean: the few where a network misses by far more than
    any noise (the peaks of a few very bright spots on a dark background) would otherwise
    shift the whole image's background."""
    if not batches:
        return []
    offsets = []
    with torch.no_grad():
        for unet in unets(net):
            unet.eval()
            parts = []
            for arrays in batches:
                y = arrays[0].to(device)
                out = denoised_patch(unet, y)
                taken = (centre_of(y, out.shape[1]).float() - out).transpose(0, 1)
                parts.append(taken.reshape(out.shape[1], -1))
            offset = sum(p.sum(1) for p in parts) / sum(p.shape[1] for p in parts)
            values = torch.cat(parts, 1)
            for c, row in enumerate(values):
                away = (row - row.median()).abs()
                spread = 1.4826 * away.median()
                kept = away <= TRIM * spread
                if spread > 0 and not kept.all():  # else the plain mean above
                    offset[c] = row[kept].mean()
            unet.head.bias.add_(offset.to(unet.head.bias.dtype))
            offsets.append([float(v) for v in offset])
    return offsets


TRIM = 50.0
"""Robust standard deviations (1.4826 median absolute deviations) around the median beyond
which :func:`keep_mean` leaves a pixel's difference out: far beyond the noise's tails and the
detail a denoiser takes from a real capture, so that on most images nothing is left out."""
