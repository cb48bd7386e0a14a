"""The error estimate's noise pieces: the variance map, the probes and the patch estimate."""

from __future__ import annotations

import numpy as np
import torch

from napari_gr2r.engine.data.normalization import Normalization
from napari_gr2r.engine.noise.level import NoiseLevel
from napari_gr2r.engine.quality.risk import correlated_normal, patch_mse, probe, variance_map


def test_variance_map_follows_the_local_mean():
    norm = Normalization([0.0], [100.0])
    level = NoiseLevel([0.01], [0.001], [0.005])
    block = np.full((1, 1, 32, 32), 50.0, np.float32)
    var = variance_map(block, level, norm, None)
    # (0.01 * 0.5 + 0.001) in normalised units, times the scale squared
    np.testing.assert_allclose(var, (0.01 * 0.5 + 0.001) * 100**2, rtol=1e-5)


def test_white_probes_have_unit_variance_and_correlated_ones_the_kernels_correlation():
    gen = torch.Generator().manual_seed(0)
    white = correlated_normal((4, 1, 64, 64), None, gen).numpy()
    assert abs(white.var() - 1) < 0.03
    kernel = (np.ones((1, 3)) / np.sqrt(3)).tolist()
    noise = correlated_normal((4, 1, 64, 64), kernel, gen).numpy()
    assert abs(noise.var() - 1) < 0.05
    rho = np.mean(noise[..., 1:] * noise[..., :-1]) / noise.var()
    assert abs(rho - 2 / 3) < 0.05  # [1, 1, 1] / sqrt 3: neighbours share two of three


def test_probes_scale_with_the_standard_deviation():
    gen = torch.Generator().manual_seed(1)
    sd = np.full((1, 1, 64, 64), 3.0, np.float32)
    c = probe(sd, None, gen)
    assert abs(c.std() / 3 - 1) < 0.03


def test_patch_mse_of_the_identity_is_the_noise_variance_and_of_zero_the_signal():
    level = NoiseLevel([0.0], [0.01], [0.01])
    gen = torch.Generator().manual_seed(2)
    y = 0.5 + 0.1 * torch.randn((4, 1, 32, 32), generator=gen)
    identity = patch_mse(torch.nn.Identity(), [y], level, probes=2)
    assert abs(identity / 0.01 - 1) < 0.02  # the identity's error is all the noise
    zero = patch_mse(lambda x: torch.zeros_like(x), [y], level)
    assert abs(zero / (float(y.square().mean()) - 0.01) - 1) < 0.02
