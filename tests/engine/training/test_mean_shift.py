"""A run that keeps the input's brightness (TrainConfig(keep_mean=True))."""

from __future__ import annotations

import copy

import numpy as np
import torch

from napari_gr2r import engine
from napari_gr2r.engine.model.networks import Ensemble, UNet
from napari_gr2r.engine.training.mean_shift import denoised_patch, keep_mean
from napari_gr2r.sample_data import load_sample


def _taken(net: torch.nn.Module, batches: list[list[torch.Tensor]]) -> torch.Tensor:
    """Per channel, the mean of input minus output over ``batches`` (each patch's border
    mirrored, as denoising mirrors an image's)."""
    with torch.no_grad():
        parts = [(b[0] - denoised_patch(net, b[0])).transpose(0, 1).flatten(1) for b in batches]
    return torch.cat(parts, 1).mean(1)


def _batches(channels: int) -> list[list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    return [[torch.rand(4, channels, 24, 24, generator=gen) * 2 + 1] for _ in range(3)]


def test_each_channel_of_a_biased_network_is_shifted_to_its_input_mean():
    torch.manual_seed(0)
    net = UNet(dims=2, channels=2, width=4, depth=1).eval()
    with torch.no_grad():
        net.head.bias.add_(torch.tensor([0.3, -0.2]))
    batches = _batches(2)
    before = _taken(net, batches)
    assert before.abs().min() > 0.1  # the bias is there to remove
    offsets = keep_mean(net, batches, torch.device("cpu"))
    assert np.allclose(offsets[0], before.numpy(), atol=1e-5)
    assert _taken(net, batches).abs().max() < 1e-5


def test_every_member_of_an_ensemble_is_shifted_on_its_own():
    torch.manual_seed(0)
    net = Ensemble(members=3, dims=2, channels=1, width=4, depth=1).eval()
    with torch.no_grad():
        for i, member in enumerate(net.members):
            member.head.bias.add_(0.2 * (i - 1))
    batches = _batches(1)
    offsets = keep_mean(net, batches, torch.device("cpu"))
    assert len(offsets) == 3
    assert offsets[0][0] > offsets[2][0] + 0.3  # each member its own offset
    for member in net.members:
        assert _taken(member, batches).abs().max() < 1e-5


def test_without_patches_nothing_changes():
    net = UNet(dims=2, channels=1, width=4, depth=1).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert keep_mean(net, [], torch.device("cpu")) == []
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_a_run_from_the_prior_keeps_the_image_brightness():
    noisy, _, _ = load_sample("fmd_confocal")  # a real capture, 8-bit, clipped at 0
    drift = {}
    for keep in (False, True):
        config = engine.TrainConfig.from_preset("fast", steps=40, seed=0, tta=1, keep_mean=keep)
        model = engine.train(noisy, axes="YX", config=config)
        denoised = engine.denoise(model, noisy, axes="YX")
        drift[keep] = abs(float(denoised.mean()) / float(noisy.mean()) - 1)
    assert drift[False] > 0.005  # the prior's brightness, carried onto this capture
    assert drift[True] < 0.5 * drift[False]


def test_a_few_pixels_a_network_misses_by_far_do_not_shift_the_rest():
    """One pixel per patch far above the rest (a very bright spot on a dark background): the
    shift comes from the other pixels, as it would without them."""
    torch.manual_seed(0)
    net = UNet(dims=2, channels=1, width=4, depth=1).eval()
    with torch.no_grad():
        net.head.bias.add_(0.3)
    batches = _batches(1)
    spiked = [[b[0].clone()] for b in batches]
    for arrays in spiked:
        arrays[0][:, :, 12, 12] = 500.0
    plain = copy.deepcopy(net)
    keep_mean(plain, batches, torch.device("cpu"))
    keep_mean(net, spiked, torch.device("cpu"))
    # (a plain mean over all pixels moves it by 0.8)
    assert abs(float(net.head.bias - plain.head.bias)) < 0.1
    assert abs(float(_taken(net, batches))) < 0.1
