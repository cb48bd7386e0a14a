"""The local mean of an image: the intensity at which the noise's variance is looked up.

The error estimate, the training's validation and a calibration all take a pixel's intensity as
the mean of its 5x5 neighbourhood (reflected at the borders), so that a variance measured at one
of them is looked up at the same kind of value by the others.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def box_mean(x: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """The mean over ``(2 radius + 1)²`` pixels around each pixel of the last two axes."""
    planes = x.reshape(-1, 1, *x.shape[-2:])
    mode = "reflect" if min(x.shape[-2:]) > radius else "replicate"
    padded = F.pad(planes, (radius,) * 4, mode=mode)
    return F.avg_pool2d(padded, 2 * radius + 1, stride=1).reshape(x.shape)
