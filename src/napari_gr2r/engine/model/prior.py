"""The pretrained start of the ``fast`` network (``TrainConfig(start="prior")``).

A network trained on one image for a few hundred steps learns its denoising from nothing; on
low-light captures that budget falls short of what a classical denoiser knows beforehand. The
prior is the ``fast`` U-Net (2D, width 16, depth 2, one channel) trained with clean targets on
generated fluorescence-like images (filaments, textured nuclei, puncta) under Poisson-Gaussian
noise over a wide range of levels, white and correlated, 8-bit clipped or not, each image scaled
as the engine scales one for training (``scripts/make_prior.py`` builds it; no existing image is
among them, so no benchmark or test image has been seen by it).
Training then adapts it to the user's image with the self-supervised objective alone, at
``TrainConfig.prior_lr``; the image's own noise decides what it becomes.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import nn

from .networks import UNet, unets

PRIOR_PATH = Path(__file__).with_name("prior_fast.pt")
"""The prior's weights (a ``state_dict`` of :class:`~.networks.UNet`), shipped with the package."""

MEMBER_PRIORS: tuple[Path, ...] = (PRIOR_PATH,) + tuple(
    Path(__file__).with_name(f"prior_fast_{k}.pt") for k in (2, 3, 4))
"""The priors an ensemble's members start from, member ``i`` from ``MEMBER_PRIORS[i % 4]``: the
prior; and three trained three times as long on three times the scenes, on the prior's scenes
and on two other draws of scenes from other random starts (``scripts/make_prior.py --seed 1``
and ``2``; the docstring there has the four commands). Members that start from one prior stay
alike through a short adaptation and their mean is no better than one of them; members from
different priors make different errors, which their mean averages out. A weaker start still
weighs on the mean, and the longer recipe gives better starts than the prior's own on other
draws of scenes (benchmarks/results/realnoise-levers-fast.md, "Better member priors")."""

PRIOR_SHAPE = dict(dims=2, channels=1, in_channels=1, width=16, depth=2, residual=False)
"""The network the priors were trained as."""


@functools.cache
def prior_weights(index: int = 0) -> dict[str, torch.Tensor]:
    """Prior ``index`` of :data:`MEMBER_PRIORS` (0: the prior itself), loaded once
    (``weights_only``: plain tensors, nothing executed)."""
    return torch.load(MEMBER_PRIORS[index], map_location="cpu", weights_only=True)


def fits(net: nn.Module) -> bool:
    """Whether ``net`` (a U-Net, or an ensemble of them) has the prior's shape."""
    return all(isinstance(m, UNet) and all(getattr(m, k) == v for k, v in PRIOR_SHAPE.items())
               for m in unets(net))


def load_prior(net: nn.Module) -> bool:
    """Copy the prior into ``net`` where it fits: a single network takes the prior, member ``i``
    of an ensemble prior ``i % 4`` of :data:`MEMBER_PRIORS`; whether it did."""
    if not fits(net):
        return False
    for i, member in enumerate(unets(net)):
        member.load_state_dict(prior_weights(i % len(MEMBER_PRIORS)))
    return True
