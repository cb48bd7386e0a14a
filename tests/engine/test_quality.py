"""engine.assess: the error estimated without the clean image against the error measured with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_gr2r import engine
from napari_gr2r.engine.quality import assess
from tests.helpers import tiny


def _blur(sd):
    r = int(np.ceil(3 * sd))
    x = np.arange(-r, r + 1)
    g = np.exp(-(x**2) / (2 * sd**2))
    kernel = torch.tensor(np.outer(g, g) / g.sum() ** 2, dtype=torch.float32)[None, None]

    def run(block):
        planes = torch.from_numpy(np.ascontiguousarray(block)).reshape(-1, 1, *block.shape[-2:])
        out = F.conv2d(F.pad(planes, (r,) * 4, mode="reflect"), kernel)
        return out.reshape(block.shape).numpy()

    return run


def _true_mse(out, clean):
    return float(np.mean((out.astype(np.float64) - clean) ** 2))


@pytest.fixture(scope="module")
def model(gaussian2d):
    return engine.train(gaussian2d, "YX", tiny(steps=120))


def test_estimate_within_1db_for_a_trained_model(model, gaussian2d, clean2d):
    report = assess(model, gaussian2d, "YX", keep_denoised=True)
    np.testing.assert_allclose(report.denoised, engine.denoise(model, gaussian2d, "YX"),
                               atol=1e-3)
    true = _true_mse(report.denoised, clean2d)
    error_db = 10 * np.log10(report.mse / true)
    assert abs(error_db) < 1.0, (report.mse, true)
    assert report.psnr(200) == pytest.approx(10 * np.log10(200**2 / report.mse))
    # the noise was fitted on this image: sd 25 of white noise
    assert report.noise.sd == pytest.approx(25, rel=0.1)
    assert report.noise.kernel is None


def test_estimate_within_1db_for_the_identity(gaussian2d, clean2d):
    report = assess(lambda block: block, gaussian2d, "YX")
    true = _true_mse(gaussian2d, clean2d)
    assert abs(10 * np.log10(report.mse / true)) < 1.0, (report.mse, true)
    assert report.residual_structure == 0.0


def test_residual_structure_rises_with_the_signal_removed():
    """Sharp-edged shapes: a blur removes their edges with the noise."""
    yy, xx = np.mgrid[0:96, 0:96]
    clean = 200.0 * (((yy // 12) + (xx // 12)) % 2)
    noisy = (clean + np.random.default_rng(0).normal(0, 25, clean.shape)).astype(np.float32)
    identity = assess(lambda block: block, noisy, "YX").residual_structure
    mild = assess(_blur(0.7), noisy, "YX").residual_structure
    strong = assess(_blur(3.0), noisy, "YX")
    assert 0.0 == identity < mild < strong.residual_structure <= 1.0, (identity, mild, strong)
    assert strong.signal_removed, strong.residual_structure


def test_seeded_and_lazy_inputs_agree(model, gaussian2d):
    import dask.array as da

    first = assess(model, gaussian2d, "YX", seed=3)
    again = assess(model, da.from_array(gaussian2d, chunks=48), "YX", seed=3,
                   max_pixels=gaussian2d.size)
    assert first.mse == pytest.approx(again.mse, rel=0.05)
    assert assess(model, gaussian2d, "YX", seed=3).mse == first.mse


def test_crops_of_a_large_image_estimate_the_same_error(model, gaussian2d, clean2d):
    """Beyond max_pixels, seeded crops (their borders denoised, not counted) stand in."""
    report = assess(model, gaussian2d, "YX", max_pixels=3000)
    assert report.pixels >= 3000
    true = _true_mse(engine.denoise(model, gaussian2d, "YX"), clean2d)
    assert abs(10 * np.log10(report.mse / true)) < 1.5
