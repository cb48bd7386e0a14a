"""The objectives: the identity zeroes the paper's loss but not the pinned default."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from napari_gr2r.engine.noise.level import NoiseLevel
from napari_gr2r.engine.training.losses import GR2RLoss, RecorruptedValidation, pinned_noise, rademacher


class _Identity(nn.Module):
    def forward(self, x):
        return x


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(4, 1, 32, 32, generator=g), g


def test_identity_zeroes_the_paper_objective():
    y, g = _batch()
    result = GR2RLoss(gamma=2.0, lambda_g=1.0, noise_level=None)(_Identity(), y, None, g)
    assert float(result.loss) == 0.0
    assert result.residual_energy == 0.0


def test_near_identity_does_not_zero_the_pinned_objective():
    y, g = _batch()
    level = NoiseLevel(a=[0.0], b=[0.01], typical=[0.01])

    def near_identity(t):
        return t * (1 - 1e-4)

    paper = GR2RLoss(gamma=2.0, lambda_g=1.0, noise_level=None)(near_identity, y, None, g)
    pinned = GR2RLoss(gamma=1.0, lambda_g=0.0, noise_level=level)(near_identity, y, None, g)
    assert float(paper.loss) < 1e-7
    # n is pinned to SD 0.1, so ||f(y+n) - (y-n)||^2 is about ||2n||^2 = 0.04
    assert 0.03 < pinned.terms["unsupervised"] < 0.05


def test_pinned_noise_has_the_estimated_level_and_zero_mean():
    g = torch.Generator().manual_seed(1)
    signal = torch.rand(8, 1, 64, 64, generator=g)
    residual = 0.001 * torch.randn(signal.shape, generator=g)  # a nearly collapsed residual
    level = NoiseLevel(a=[0.02], b=[0.001], typical=[0.011])
    n = pinned_noise(residual, rademacher(signal.shape, g), signal, level)
    energy = n.square().mean(dim=(2, 3))
    expected = level.variance(signal).mean(dim=(2, 3))
    torch.testing.assert_close(energy, expected, rtol=1e-4, atol=0)
    assert abs(float(n.mean())) < 0.01


def test_pinned_noise_is_not_shrunk_by_dark_pixels():
    # Poisson-like level with almost no read noise: the predicted variance of black pixels
    # is close to zero, which must not drive the generated noise of the patch to zero.
    g = torch.Generator().manual_seed(2)
    signal = torch.full((4, 1, 32, 32), 0.5)
    signal[..., :4, :] = 0.0
    level = NoiseLevel(a=[0.04], b=[1e-7], typical=[0.02])
    residual = 0.1 * torch.randn(signal.shape, generator=g)
    n = pinned_noise(residual, rademacher(signal.shape, g), signal, level)
    bright = n[..., 4:, :].square().mean()
    assert 0.5 * 0.04 * 0.5 < float(bright) < 2 * 0.04 * 0.5


def test_pinned_noise_takes_the_noise_correlation():
    g = torch.Generator().manual_seed(3)
    signal = torch.full((4, 1, 64, 64), 0.5)
    kernel = [[0.0, 0.3, 0.0], [0.3, 1.0, 0.3], [0.0, 0.3, 0.0]]
    norm = sum(v * v for row in kernel for v in row) ** 0.5
    kernel = [[v / norm for v in row] for row in kernel]
    white = NoiseLevel(a=[0.0], b=[0.01], typical=[0.01])
    coloured = NoiseLevel(a=[0.0], b=[0.01], typical=[0.01], kernel=kernel)
    residual = 0.1 * torch.randn(signal.shape, generator=g)
    mask = rademacher(signal.shape, g)

    def neighbour_correlation(n):
        return float((n[..., :, 1:] * n[..., :, :-1]).mean() / n.square().mean())

    assert abs(neighbour_correlation(pinned_noise(residual, mask, signal, white))) < 0.05
    # a kernel [0.3, 1, 0.3] (normalised) correlates neighbours by 2 * 0.3 / 1.36 = 0.44
    assert 0.35 < neighbour_correlation(pinned_noise(residual, mask, signal, coloured)) < 0.55


def test_validation_ranks_the_identity_below_a_denoiser():
    # y = x + e with e ~ N(0, 0.1^2): the GR2R loss of the identity is zero, the validation
    # criterion scores it 4 sigma^2 and a network that returns the clean image 2 sigma^2.
    g = torch.Generator().manual_seed(4)
    x = torch.rand(8, 1, 48, 48, generator=g)
    y = x + 0.1 * torch.randn(x.shape, generator=g)
    level = NoiseLevel(a=[0.0], b=[0.01], typical=[0.01])
    validation = RecorruptedValidation(level)

    def identity(t):
        return t

    def oracle(t):
        return x.repeat(t.shape[0] // x.shape[0], 1, 1, 1)

    paper = GR2RLoss(gamma=2.0, lambda_g=1.0, noise_level=None)
    assert float(paper(identity, y, None, g).loss) == 0
    assert float(validation(identity, y, None, g).loss) == pytest.approx(0.04, rel=0.05)
    assert float(validation(oracle, y, None, g).loss) == pytest.approx(0.02, rel=0.05)


def test_split_recorruption_scores_at_the_split_noise_levels():
    # with alpha = 0.5 the pair is (y + n/2, y - 2n): the near identity scores (a + 1/a)^2
    # sigma^2 = 6.25 sigma^2 in training and validation, a perfect denoiser (1 + 1/a^2) sigma^2
    g = torch.Generator().manual_seed(4)
    x = torch.rand(8, 1, 48, 48, generator=g)
    y = x + 0.1 * torch.randn(x.shape, generator=g)
    level = NoiseLevel(a=[0.0], b=[0.01], typical=[0.01])

    def near_identity(t):
        return t * (1 - 1e-4)

    def oracle(t):
        return x.repeat(t.shape[0] // x.shape[0], 1, 1, 1)

    split = GR2RLoss(gamma=0.0, lambda_g=0.0, noise_level=level, alpha=0.5)
    assert split(near_identity, y, None, g).terms["unsupervised"] == pytest.approx(0.0625, rel=0.1)
    validation = RecorruptedValidation(level, alpha=0.5)
    assert float(validation(near_identity, y, None, g).loss) == pytest.approx(0.0625, rel=0.05)
    assert float(validation(oracle, y, None, g).loss) == pytest.approx(0.05, rel=0.05)


def test_alpha_defaults_to_the_papers_pair_and_is_checked():
    from napari_gr2r.engine import ConfigError, TrainConfig

    assert TrainConfig(method="gr2r").resolved_alpha == 1.0
    assert TrainConfig(method="gr2r-paper").resolved_alpha == 1.0
    assert TrainConfig(method="gr2r", alpha=0.8).resolved_alpha == 0.8
    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match="alpha"):
            TrainConfig(alpha=bad)


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_noise_scale_sets_the_generated_noise_of_the_near_identity(scale):
    """``noise_scale`` is the generated noise's variance over the noise model's: the
    near-identity's unsupervised term is about ``||2n||²``, four times that variance."""
    from napari_gr2r.engine import TrainConfig
    from napari_gr2r.engine.data.normalization import Normalization
    from napari_gr2r.engine.training.losses import build_objective

    y, g = _batch()
    level = NoiseLevel(a=[0.0], b=[0.01], typical=[0.01])
    config = TrainConfig.from_preset("fast", noise_scale=scale, gamma=0.0)
    objective = build_objective(config, Normalization([0.0], [1.0]), level)
    result = objective(lambda t: t * (1 - 1e-4), y, None, g)
    assert result.terms["unsupervised"] == pytest.approx(4 * 0.01 * scale, rel=0.1)


def test_generated_noise_from_the_model_follows_the_noise_level_not_the_residual():
    """``generated_noise="model"`` draws GR2R's generated noise from the noise level
    (variance ``a y + b`` at each pixel); the default draws it from the network's residual.
    A network that halves its input has no residual on a dark half of zeros: the residual's
    noise is zero there, the model's has the level's variance on each half."""
    from napari_gr2r.engine import ConfigError, TrainConfig
    from napari_gr2r.engine.data.normalization import Normalization
    from napari_gr2r.engine.training.losses import build_objective

    y = torch.zeros(4, 1, 64, 64)
    y[..., 32:] = 0.5
    level = NoiseLevel(a=[0.02], b=[0.01], typical=[0.015])
    seen: list[torch.Tensor] = []

    def halves(t):
        seen.append(t)
        return t * 0.5

    def generated(**settings):
        seen.clear()
        config = TrainConfig.from_preset("fast", **settings)
        objective = build_objective(config, Normalization([0.0], [1.0]), level)
        objective(halves, y, None, torch.Generator().manual_seed(1))
        noise = seen[1] - y  # the recorrupted input y + n (alpha 1)
        return float(noise[..., :32].square().mean()), float(noise[..., 32:].square().mean())

    dark, bright = generated(generated_noise="model")
    assert dark == pytest.approx(0.01, rel=0.05)
    assert bright == pytest.approx(0.01 + 0.02 * 0.5, rel=0.05)
    dark, bright = generated()
    assert dark == 0.0
    assert bright > 0.01
    with pytest.raises(ConfigError, match="generated_noise"):
        TrainConfig(generated_noise="gaussian")


def test_fast_preset_trains_gr2r_without_the_pseudo_term_in_two_passes():
    """``fast`` and ``balanced`` (four of ``fast``'s networks) leave out GR2R's
    pseudo-supervised term (so 620 steps cost what 400 with it would); another method,
    ``quality`` or a gamma given keep theirs."""
    from napari_gr2r.engine import TrainConfig
    from napari_gr2r.engine.data.normalization import Normalization
    from napari_gr2r.engine.training.losses import build_objective

    y, g = _batch()
    level = NoiseLevel(a=[0.0], b=[0.01], typical=[0.01])
    seen: list[int] = []

    def net(t):
        seen.append(t.shape[0])
        return t * 0.5

    def passes(config):
        seen.clear()
        result = build_objective(config, Normalization([0.0], [1.0]), level)(net, y, None, g)
        return seen[1] // y.shape[0], set(result.terms)  # seen[0]: f(y) without gradient

    fast = TrainConfig.from_preset("fast")
    assert (fast.steps, fast.resolved_gamma) == (620, 0.0)
    assert passes(fast) == (1, {"unsupervised"})
    assert passes(TrainConfig.from_preset("quality"))[0] == 2  # unsupervised + pseudo
    assert TrainConfig.from_preset("fast", gamma=1.0).resolved_gamma == 1.0
    assert TrainConfig.from_preset("fast", gamma=None).resolved_gamma == 0.0  # 'default'
    assert TrainConfig.from_preset("fast", method="gr2r-paper").resolved_gamma == 2.0
    assert TrainConfig.from_preset("quality").resolved_gamma == 1.0
    assert TrainConfig().resolved_gamma == TrainConfig.from_preset("balanced").resolved_gamma == 0
    assert TrainConfig("quality", gamma=None).resolved_gamma == 1.0
