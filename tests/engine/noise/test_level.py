"""The noise level and correlation measured before training, and what GR2R makes of them."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gr2r import engine
from napari_gr2r.engine.data.normalization import Normalization
from napari_gr2r.engine.noise.level import NoiseLevel
from tests.helpers import psnr, tiny


def _blurred_noise(shape, sd, seed):
    """Gaussian noise of standard deviation ``sd`` correlated by a Gaussian blur (sd 1 px)."""
    r = np.arange(-2, 3)
    kernel = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / 2.0)
    kernel /= np.sqrt(np.sum(kernel**2))
    white = np.random.default_rng(seed).standard_normal((shape[0] + 4, shape[1] + 4))
    windows = np.lib.stride_tricks.sliding_window_view(white, kernel.shape)
    return sd * np.einsum("ijkl,kl->ij", windows, kernel)


@pytest.fixture(scope="module")
def correlated2d(clean2d):
    return (clean2d + _blurred_noise(clean2d.shape, 25.0, 4)).astype(np.float32)


def _estimate(noisy):
    block = noisy[None, None].astype(np.float32)
    norm = Normalization.fit([block])
    level = NoiseLevel.estimate([norm.apply(block)], np.random.default_rng(0))
    return level, np.sqrt(level.typical[0]) * norm.scale(0)


def test_white_noise_is_measured_as_white(gaussian2d):
    level, sd = _estimate(gaussian2d)
    assert level.kernel is None
    assert level.neighbour_correlation == 0
    assert 25 * 0.85 < sd < 25 * 1.2, sd


def test_correlated_noise_is_measured_with_its_correlation(correlated2d, gaussian2d):
    level, sd = _estimate(correlated2d)
    assert level.kernel is not None
    kernel = np.asarray(level.kernel)
    centre = kernel.shape[0] // 2
    assert np.isclose(np.sum(kernel**2), 1, atol=1e-4)
    assert kernel[centre, centre + 1] > 0.2 * kernel[centre, centre]
    # the true neighbour correlation of this noise is exp(-1/4) = 0.78
    assert 0.4 < level.neighbour_correlation < 0.9
    # high-pass statistics alone see a fraction of this noise; the flat windows see all of it
    assert 25 * 0.8 < sd < 25 * 1.25, sd
    _, white_fit = _estimate(gaussian2d)
    assert sd > 0.8 * white_fit


def test_gr2r_denoises_correlated_noise(correlated2d, clean2d):
    events = []
    model = engine.Trainer(correlated2d, "YX", tiny()).fit(events.append)
    assert events[0].noise_correlation > 0.4
    before = psnr(correlated2d, clean2d)
    after = psnr(engine.denoise(model, correlated2d, "YX"), clean2d)
    assert after > before + 2, (before, after)


def test_the_correlation_survives_a_checkpoint(correlated2d, tmp_path):
    model = engine.Trainer(correlated2d, "YX", tiny(steps=2)).fit()
    loaded = engine.load_model(engine.save_model(model, tmp_path / "m.gr2r.pt"))
    np.testing.assert_allclose(loaded.noise_level.kernel, model.noise_level.kernel)


def _camera_with_correlated_noise(sd: float, seed: int) -> tuple[np.ndarray, float]:
    """scikit-image's camera binned 2x2, a 192² crop scaled to 0..1000, with Gaussian noise
    filtered by [1, 1] along Y and [1, 2, 1] along X (unit norm): a busy photograph whose
    texture hides where the noise is, so its correlation cannot be measured."""
    skimage_data = pytest.importorskip("skimage.data")
    image = np.asarray(skimage_data.camera(), np.float64)
    image = image.reshape(256, 2, 256, 2).mean(axis=(1, 3))[32:224, 32:224]
    image = (image - image.min()) * 1000 / (image.max() - image.min())
    kernel = np.outer([1.0, 1.0], [1.0, 2.0, 1.0])
    kernel /= np.sqrt(np.sum(kernel**2))
    white = np.random.default_rng(seed).standard_normal((193, 194))
    windows = np.lib.stride_tricks.sliding_window_view(white, kernel.shape)
    return (image + sd * np.einsum("ijkl,kl->ij", windows, kernel)).astype(np.float32), sd**2


def test_correlation_that_cannot_be_measured_is_flagged_and_widens_the_interval():
    """Strong correlated noise on a busy image is detected but not measured: fitted as white,
    its variance reads several times low, so the fit says so, the estimate's interval allows
    for it and holds the truth, and the report says how to get a tight one."""
    from napari_gr2r.engine.quality.estimate import SYSTEMATIC

    noisy, variance = _camera_with_correlated_noise(20.0, 0)
    fit = engine.fit_noise(noisy, "YX")
    assert fit.level.correlation_unmeasured
    assert fit.kernel is None
    assert fit.spread == SYSTEMATIC["unmeasured"]
    report = engine.assess(lambda block: block, noisy, "YX")  # the identity: its error is the noise
    low, high = report.mse_interval
    assert low <= variance <= high, (report.mse_interval, variance)
    assert "calibrate" in report.summary()
    # white noise of the same strength on the same image is not flagged
    clean, _ = _camera_with_correlated_noise(0.0, 0)
    white = clean + np.random.default_rng(1).normal(0, 20, clean.shape).astype(np.float32)
    assert not engine.fit_noise(white, "YX").level.correlation_unmeasured
