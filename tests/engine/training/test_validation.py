import torch

from napari_gr2r.engine.noise.level import NoiseLevel
from napari_gr2r.engine.training.losses import R2RLoss
from napari_gr2r.engine.training.validation import Validator


def _score(variance: float):
    level = NoiseLevel([0.0], [variance], [variance])
    gen = torch.Generator().manual_seed(0)
    y = 0.5 + 0.1 * torch.randn((4, 1, 32, 32), generator=gen)  # noise of variance 0.01
    blur = torch.nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    validator = Validator([[y]], R2RLoss(level, 1.0), (level, None), torch.device("cpu"), 0)
    return validator.score(blur)


def test_the_estimated_psnr_follows_the_error_and_is_none_where_the_estimate_falls_to_zero():
    # the 3x3 mean of a flat image leaves 1/9 of the noise: 0.01 / 9, about 29.5 dB
    assert abs(_score(0.01).psnr - 29.5) < 1.0
    # a noise level far above what the residual holds drives the estimate below zero; no
    # number of decibels is true then (it used to read 120 dB)
    assert _score(1.0).psnr is None
