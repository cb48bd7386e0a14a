"""The noise fit on real microscope captures kept in the repository (FMD BPAE, captures 1-2,
development data): white confocal noise is not taken for correlated noise, the wide-field
camera's correlated noise is, and the fitted line gives the capture's noise variance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_gr2r import engine

FMD = Path(__file__).parents[3] / "benchmarks" / "data" / "fmd"


def _capture(name: str) -> tuple[np.ndarray, np.ndarray, float]:
    """A capture, the 50-capture average matched to it, and the capture's noise variance
    (its difference from the average, less the average's own remainder)."""
    from PIL import Image

    raw = np.asarray(Image.open(FMD / "raw" / f"{name}.png"), np.float64)
    gt = np.asarray(Image.open(FMD / "gt" / f"{name}.png"), np.float64)
    design = np.stack([gt.ravel(), np.ones(gt.size)], axis=1)
    a, b = np.linalg.lstsq(design, raw.ravel(), rcond=None)[0]
    truth = float(np.mean((raw - a * gt - b) ** 2)) / (1 + a * a / 50)
    return raw.astype(np.float32), a * gt + b, truth


@pytest.mark.parametrize("name", ["Confocal_BPAE_G_1", "Confocal_BPAE_G_2"])
def test_confocal_noise_is_white_and_its_line_holds(name):
    raw, clean, truth = _capture(name)
    fit = engine.fit_noise(raw, "YX")
    assert fit.kernel is None  # captures differ from their average by white noise
    assert abs(np.mean(fit.variance(clean)) / truth - 1) < 0.15


def test_wide_field_camera_noise_is_found_correlated():
    raw, _, _ = _capture("WideField_BPAE_G_1")
    assert engine.fit_noise(raw, "YX").neighbour_correlation > 0.4
