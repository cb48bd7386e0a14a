"""Liu et al.'s single noise level, chosen in place of the per-bin refit where the noise does
not follow the intensity."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gr2r.engine.data.normalization import Normalization
from napari_gr2r.engine.noise.global_level import liu_level, refit_selected
from napari_gr2r.engine.noise.level import NoiseLevel
from napari_gr2r.engine.quality.risk import variance_map
from tests.helpers import blobs


@pytest.fixture(scope="module")
def clean():
    return blobs(160, 24, 5, radius=(2, 8), height=400, base=100, ramp=1.0)


def _fit(noisy: np.ndarray, seed: int = 0):
    block = noisy[None, None].astype(np.float32)
    norm = Normalization.fit([block])
    blocks = [norm.apply(block)]
    rng = np.random.default_rng(seed)
    level, curve = refit_selected(NoiseLevel.estimate(blocks, rng), blocks, rng)
    return float(variance_map(block, level, norm, curve).mean()), level, curve


def test_gaussian_noise_gets_one_level_within_a_few_percent(clean):
    """One eigenvalue spreads more over draws than the bins' many: each seed within 7 %,
    their mean within 3 % (no bias)."""
    errors = []
    for seed in range(4):
        noisy = clean + np.random.default_rng(seed).normal(0, 20, clean.shape)
        fitted, level, curve = _fit(noisy, seed)
        assert level.a == [0.0]  # one level: the line was flat
        assert curve.a == [0.0]
        assert curve.disagreement[0] >= 0.0
        errors.append(fitted / 20**2 - 1)
    assert max(np.abs(errors)) < 0.07, errors
    assert abs(np.mean(errors)) < 0.03, errors


def test_poisson_gaussian_noise_keeps_its_bins(clean):
    rng = np.random.default_rng(0)
    photons = clean / 20
    noisy = (rng.poisson(photons) + rng.normal(0, 2, clean.shape)) * 20
    _, level, curve = _fit(noisy)
    assert level.a[0] > 0
    assert curve.disagreement == [0.0]
    assert curve.v[0][-1] > 2 * curve.v[0][0]


def test_liu_level_reads_pure_noise_at_its_variance():
    noise = np.random.default_rng(3).normal(0, 0.5, (128, 128))
    assert abs(liu_level([noise], np.random.default_rng(0)) / 0.25 - 1) < 0.05
