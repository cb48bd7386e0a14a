"""The Noise panel and the estimated-PSNR curve, on a real viewer with really trained models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tests.helpers import StubSettings, blobs

from napari_gr2r import engine
from napari_gr2r._qt._denoise_panel import DenoisePanel
from napari_gr2r._qt._noise_panel import NoisePanel, NoiseView
from napari_gr2r._qt._state import WidgetState
from napari_gr2r._qt._training_panel import TrainingPanel


def _noisy_blobs(size: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = blobs(size, 10, rng)
    return (image + rng.normal(0, 25, image.shape)).astype(np.float32)


SETTINGS = engine.TrainConfig.from_preset("fast", steps=40, width=8, depth=2, patch_size=32,
                                          batch_size=4, val_every=20, event_every=10, seed=0)
"""A tiny network that validates (and so estimates its PSNR) every 20 steps."""


@pytest.fixture
def state(make_napari_viewer):
    state = WidgetState(make_napari_viewer())
    state.settings = StubSettings(SETTINGS)
    layer = state.viewer.add_image(_noisy_blobs(), name="blobs")
    state.set_choice(layer, "YX", True)
    return state


def test_training_plots_the_estimated_psnr_then_the_panel_draws_the_model(state, qtbot):
    training, noise = TrainingPanel(state), NoisePanel(state)
    training.start()
    qtbot.waitUntil(lambda: not state.training, timeout=120_000)
    steps = [s for s, _ in training.loss_plot.points("estimated_psnr")]
    assert steps == [20, 40]
    assert all(math.isfinite(v) for _, v in training.loss_plot.points("estimated_psnr"))
    assert training.loss_plot.psnr_curve.isVisible()
    # the panel assesses the newly trained model on its layer by itself
    qtbot.waitUntil(lambda: noise.view.report is not None and not state.assessing,
                    timeout=120_000)
    report = noise.view.report
    assert state.quality_of(state.model, "blobs") is report
    assert report.mse > 0
    assert 0 <= report.residual_structure <= 1
    xs, ys = noise.view.scatter.getData()
    assert len(xs) > 10
    assert np.all(np.isfinite(ys))
    assert len(noise.view.line.getData()[0]) == 64
    assert len(noise.view.knots.getData()[0]) >= 2
    assert noise.view.residual_image.image.shape == report.residual_autocorrelation.shape
    assert noise.view.kernel_image.image.shape == (7, 7)
    assert "Estimated PSNR" in noise.view.summary.text()
    assert "likely" in noise.view.summary.text()  # with its 90 % interval
    # the curve shows the whole image's estimate and its interval at the model's last step
    [(step, psnr, low, high)] = training.loss_plot.points("whole_image")
    assert step == 40
    assert psnr == pytest.approx(report.psnr())
    assert (low, high) == pytest.approx(report.psnr_interval())
    assert training.loss_plot.whole_point.isVisible()
    # and the result layer records the estimate and the model it came from
    denoise = DenoisePanel(state)
    denoise.start()
    qtbot.waitUntil(lambda: "blobs [denoised]" in state.viewer.layers and not state.denoising,
                    timeout=60_000)
    meta = state.viewer.layers["blobs [denoised]"].metadata["gr2r"]
    assert meta["estimate"]["model"] == repr(state.model) == meta["model"]
    assert meta["estimate"]["psnr"] == pytest.approx(report.psnr())


def test_assess_without_a_model_fits_the_noise(state, qtbot):
    panel = NoisePanel(state)
    panel.assess_button.click()
    qtbot.waitUntil(lambda: panel.view.noise is not None and not state.assessing,
                    timeout=60_000)
    assert panel.view.report is None
    assert panel.view.noise.sd == pytest.approx(25, rel=0.15)
    assert "white" in panel.view.kernel_label.text()


def _blur(block: np.ndarray, sd: float = 3.0) -> np.ndarray:
    r = int(3 * sd)
    g = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sd * sd))
    kernel = torch.tensor(np.outer(g, g) / g.sum() ** 2, dtype=torch.float32)[None, None]
    planes = torch.from_numpy(np.ascontiguousarray(block)).reshape(-1, 1, *block.shape[-2:])
    return F.conv2d(F.pad(planes, (r,) * 4, mode="reflect"), kernel).reshape(block.shape).numpy()


def _board(square: int, sd: float) -> np.ndarray:
    """A 96² checkerboard of 0 and 200 with Gaussian noise of ``sd``."""
    yy, xx = np.mgrid[0:96, 0:96]
    clean = 200.0 * (((yy // square) + (xx // square)) % 2)
    return (clean + np.random.default_rng(0).normal(0, sd, clean.shape)).astype(np.float32)


def test_a_denoiser_that_removes_signal_is_flagged(qtbot):
    noisy = _board(12, 25)
    view = NoiseView()
    qtbot.addWidget(view)
    view.show_report(engine.assess(lambda b: b, noisy, "YX"))
    assert not view.warning.isVisibleTo(view)
    view.show_report(engine.assess(_blur, noisy, "YX"))
    assert view.warning.isVisibleTo(view)
    assert "fewer steps" in view.warning.text()


def test_a_result_worse_than_its_input_is_said_to_be(qtbot):
    noisy = _board(6, 10)
    view = NoiseView()
    qtbot.addWidget(view)
    report = engine.assess(_blur, noisy, "YX")
    assert report.worse_than_input
    view.show_report(report)
    assert view.warning.isVisibleTo(view)
    assert view.warning.text().startswith("the denoised image is likely worse than the noisy input")
    assert "fewer steps" in view.warning.text()  # and the signal it removed, on its own line
