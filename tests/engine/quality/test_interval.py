"""The estimate's 90 % interval holds the true error over seeds, and says how wide it is."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_gr2r.engine.quality.estimate import assess
from napari_gr2r.engine.quality.report import mse_interval
from tests.helpers import blobs

SEEDS = range(8)


def _blur(block: np.ndarray, sd: float = 1.0) -> np.ndarray:
    r = 3
    x = np.arange(-r, r + 1)
    g = np.exp(-(x**2) / (2 * sd**2))
    kernel = torch.tensor(np.outer(g, g) / g.sum() ** 2, dtype=torch.float32)[None, None]
    planes = torch.from_numpy(np.ascontiguousarray(block)).reshape(-1, 1, *block.shape[-2:])
    return F.conv2d(F.pad(planes, (r,) * 4, mode="reflect"), kernel).reshape(block.shape).numpy()


@pytest.fixture(scope="module")
def clean():
    return blobs(128, 16, 21, radius=(3, 10), height=300, base=100, ramp=0.5)


def _noisy(clean, kind, seed):
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return (clean + rng.normal(0, 30, clean.shape)).astype(np.float32)
    return ((rng.poisson(clean / 10) + rng.normal(0, 2, clean.shape)) * 10).astype(np.float32)


@pytest.mark.parametrize("kind", ["gaussian", "poisson-gaussian"])
def test_the_interval_holds_the_true_error_over_seeds(clean, kind):
    inside, widths = 0, []
    for seed in SEEDS:
        noisy = _noisy(clean, kind, seed)
        report = assess(_blur, noisy, "YX", seed=seed)
        true = float(np.mean((_blur(noisy[None, None])[0, 0].astype(np.float64) - clean) ** 2))
        low, high = report.mse_interval
        inside += low <= true <= high
        lo_db, hi_db = report.psnr_interval(1000)
        assert lo_db <= report.psnr(1000) <= hi_db
        widths.append(hi_db - lo_db)
    assert inside >= len(SEEDS) - 1, (inside, widths)
    assert np.median(widths) > 0.2  # never a crisp number


def test_a_known_noise_narrows_the_interval(clean):
    noisy = _noisy(clean, "gaussian", 0)
    fitted = assess(_blur, noisy, "YX")
    known = assess(_blur, noisy, "YX", noise=fitted.noise.level)  # taken as exact
    assert known.mse_interval[1] - known.mse_interval[0] < \
        0.5 * (fitted.mse_interval[1] - fitted.mse_interval[0])


def test_the_interval_widens_with_the_uncertainty():
    narrow = mse_interval(10.0, 100.0, 20.0, 0.1, 0.01)
    wide = mse_interval(10.0, 100.0, 20.0, 0.1, 0.05)
    assert wide[0] < narrow[0] < 10 < narrow[1] < wide[1]
    # an error that may be near zero: the interval reaches zero, the PSNR's top is infinite
    assert mse_interval(1.0, 100.0, 20.0, 0.1, 0.05)[0] == 0.0
    assert math.isfinite(mse_interval(1.0, 100.0, 20.0, float("nan"), 0.0)[1])


def test_the_estimates_own_spread_is_what_the_identity_shows():
    """The identity's estimate is exactly the noise variance, its true error the noise's mean
    square: they differ over draws by sigma² sqrt(2 / N), what sampling_sd says."""
    from napari_gr2r.engine.noise.level import NoiseLevel
    from napari_gr2r.engine.quality.report import sampling_sd

    sd, n = 0.1, 48 * 48
    assert sampling_sd(sd**2, sd**2, sd**2, sd**2, n) == pytest.approx(
        sd**2 * math.sqrt(2 / n), rel=1e-6)
    errors = []
    for seed in range(12):
        noisy = np.random.default_rng(seed).normal(0.5, sd, (48, 48)).astype(np.float32)
        level = NoiseLevel([0.0], [sd**2], [sd**2])
        report = assess(lambda b: b, noisy, "YX", noise=level, seed=seed, probes=2)
        errors.append(report.mse - float(np.mean((noisy - 0.5) ** 2)))
    # the probes' spread is small beside this one for the identity (its divergence is exact
    # up to the probes' own norm, whose spread is the same size: hence the loose bound)
    assert 0.4 < np.std(errors) / (sd**2 * math.sqrt(2 / n)) < 2.5


def test_an_estimate_that_falls_to_zero_reports_only_its_conservative_end():
    """Given a noise level far above the image's (an SD of 0.7 of its range), the unbiased
    estimate of a blur's error comes out negative and is clipped at zero: the report then says
    the error is too small to resolve and gives at most the interval's low PSNR, never the
    infinite PSNR of a zero error."""
    import dataclasses

    from napari_gr2r.engine.noise.level import NoiseLevel

    sd = 0.05
    noisy = np.random.default_rng(0).normal(0.5, sd, (64, 64)).astype(np.float32)
    level = NoiseLevel([0.0], [0.5], [0.5])  # variance in the normalised units (range 1)
    report = assess(_blur, noisy, "YX", noise=level, probes=2)
    assert report.unresolved
    assert report.mse == 0.0
    why = "(the error is too small for the estimate to resolve)"
    # here the interval reaches zero too: no figure at all
    assert report.mse_interval[1] == 0.0
    assert math.isnan(report.psnr(1.0))
    assert report.psnr_text(1.0) == f"unresolved {why}"
    # where the interval's upper error is above zero, its PSNR is the conservative figure
    wider = dataclasses.replace(report, mse_interval=(0.0, 1e-4))
    assert wider.psnr(1.0) == pytest.approx(40.0)
    assert wider.psnr_text(1.0) == f"40.00 dB or better {why}"
