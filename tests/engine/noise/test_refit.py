"""The white-noise refit: the noise variance per intensity bin, to about 1 % on known noise."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gr2r.engine.data.normalization import Normalization
from napari_gr2r.engine.noise.level import NoiseLevel
from napari_gr2r.engine.noise.refit import refit
from napari_gr2r.engine.quality.risk import variance_map
from tests.helpers import blobs


def _mean_variance(noisy: np.ndarray, seed: int = 0) -> tuple[float, object]:
    block = noisy[None, None].astype(np.float32)
    norm = Normalization.fit([block])
    blocks = [norm.apply(block)]
    rng = np.random.default_rng(seed)
    level, curve = refit(NoiseLevel.estimate(blocks, rng), blocks, rng)
    return float(variance_map(block, level, norm, curve).mean()), curve


@pytest.fixture(scope="module")
def clean():
    return blobs(192, 24, 11, radius=(3, 12), height=400, base=100, ramp=1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gaussian_noise_of_known_variance_is_fitted_within_2_percent(clean, seed):
    noisy = clean + np.random.default_rng(seed).normal(0, 30, clean.shape)
    fitted, curve = _mean_variance(noisy, seed)
    assert abs(fitted / 30**2 - 1) < 0.02, fitted / 30**2
    assert curve is not None
    assert 0 < curve.spread[0] < 0.05  # the bootstrap's spread: small, not nothing


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_poisson_gaussian_noise_is_fitted_within_3_percent(clean, seed):
    rng = np.random.default_rng(seed)
    photons = clean / 20  # 5..~50 photons
    noisy = (rng.poisson(photons) + rng.normal(0, 2, clean.shape)) * 20
    truth = float(np.mean(photons + 4)) * 400
    fitted, curve = _mean_variance(noisy, seed)
    assert abs(fitted / truth - 1) < 0.03, fitted / truth
    # the knots rise with the intensity
    assert curve.v[0][-1] > 2 * curve.v[0][0]


def test_correlated_noise_keeps_its_measured_kernel():
    level = NoiseLevel([0.0], [0.01], [0.01], [[0.0, 0.5, 0.0], [0.5, 0.5, 0.5], [0.0, 0.0, 0.0]])
    out, curve = refit(level, [np.zeros((1, 1, 64, 64), np.float32)], np.random.default_rng(0))
    assert out is level
    assert curve is None


def test_data_too_small_keeps_the_level():
    level = NoiseLevel([0.0], [0.01], [0.01])
    out, curve = refit(level, [np.zeros((1, 1, 8, 8), np.float32)], np.random.default_rng(0))
    assert out is level
    assert curve is None


@pytest.mark.parametrize("seed", [0, 1])
def test_the_line_follows_the_pixels_where_a_dark_floor_has_almost_no_noise(seed):
    """A dark background that rounds to the same grey level measures a variance near zero,
    very precisely: the reported line must still give the image's mean variance, not bend
    to that one bin (a real confocal capture's line was 77 % low that way)."""
    from napari_gr2r import engine

    clean = blobs(192, 24, 11, radius=(3, 12), height=400, base=0, ramp=0.0)
    photons = clean / 10

    def draw(rng):
        counts = np.round(rng.poisson(photons) + rng.normal(0, 0.3, clean.shape))
        return np.clip(counts, 0, None) * 10

    rng = np.random.default_rng(99)
    truth = np.var(np.stack([draw(rng) for _ in range(32)]), axis=0, ddof=1).mean()
    fit = engine.fit_noise(draw(np.random.default_rng(seed)).astype(np.float32), "YX",
                           seed=seed)
    assert abs(np.mean(fit.variance(clean)) / truth - 1) < 0.05


@pytest.fixture(scope="module")
def confocal_reference():
    """The bundled confocal sample's reference (a 50-capture average: real cell texture) and
    its own noise variance (1/50 of the capture's)."""
    from napari_gr2r.sample_data import load_sample

    noisy, clean, _ = load_sample("fmd_confocal")
    clean = np.asarray(clean, np.float64)
    return clean, float(np.mean((noisy - clean) ** 2)) / 50


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_poisson_gaussian_noise_on_real_texture_is_fitted_within_2_percent(confocal_reference,
                                                                          seed):
    """The fit `assess` uses, on a real micrograph's texture at a peak of 10 photons (read
    noise 2 photons): the mean variance over the pixels within 2 % of the truth."""
    from napari_gr2r.engine.noise.global_level import refit_selected

    clean, own = confocal_reference
    scale = clean.max() / 10  # grey levels per photon
    rng = np.random.default_rng(seed)
    noisy = (rng.poisson(clean / scale) + rng.normal(0, 2, clean.shape)) * scale
    truth = float(np.mean(clean / scale + 4)) * scale**2 + own
    block = noisy[None, None].astype(np.float32)
    norm = Normalization.fit([block])
    blocks = [norm.apply(block)]
    rng = np.random.default_rng(seed)
    level, curve = refit_selected(NoiseLevel.estimate(blocks, rng), blocks, rng)
    fitted = float(variance_map(block, level, norm, curve).mean())
    assert level.a[0] > 0  # signal-dependent: the bins, not one level
    assert abs(fitted / truth - 1) < 0.02, fitted / truth


@pytest.mark.xfail(strict=True, reason="noise correlated this weakly between neighbours is "
                   "fitted as white noise, whose smallest eigenvalues read it low (issue 19)")
def test_weakly_correlated_gaussian_noise_is_fitted_within_5_percent(clean):
    """Gaussian noise with the neighbour correlation of real confocal captures (0.09 along X,
    0.05 along Y): below the threshold at which the noise counts as correlated."""
    from napari_gr2r.engine.noise.global_level import refit_selected

    c, d = 0.045, 0.025  # [c, 1, c] along X, [d, 1, d] along Y
    white = np.random.default_rng(0).standard_normal((clean.shape[0] + 2, clean.shape[1] + 2))
    kernel = np.outer([d, 1, d], [c, 1, c])
    kernel /= np.sqrt(np.sum(kernel**2))
    view = np.lib.stride_tricks.sliding_window_view(white, kernel.shape)
    noisy = clean + 30 * np.einsum("ijkl,kl->ij", view, kernel)
    block = noisy[None, None].astype(np.float32)
    norm = Normalization.fit([block])
    blocks = [norm.apply(block)]
    rng = np.random.default_rng(0)
    level, curve = refit_selected(NoiseLevel.estimate(blocks, rng), blocks, rng)
    assert level.kernel is None  # fitted as white noise
    assert abs(float(variance_map(block, level, norm, curve).mean()) / 30**2 - 1) < 0.05
