"""Noise from repeated captures of a still field, or from the camera's numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_gr2r import engine
from napari_gr2r.engine.data.normalization import Normalization
from napari_gr2r.engine.errors import InputError
from napari_gr2r.engine.noise.correlation import kernel_autocorrelation
from napari_gr2r.engine.noise.drift import retained_share, without_slow_changes
from napari_gr2r.engine.training.losses import correlate_yx
from tests.helpers import blobs, tiny

GAIN, OFFSET, READ = 4.0, 100.0, 3.0


def _captures(n: int = 4, seed: int = 0, shape=(96, 96)) -> tuple[np.ndarray, np.ndarray]:
    """``n`` captures of one field: photons scaled by GAIN, read noise READ, offset OFFSET."""
    rng = np.random.default_rng(seed)
    clean = blobs(shape[0], rng=seed)  # 40..~300 photons
    frames = [GAIN * rng.poisson(clean) + rng.normal(OFFSET, READ, clean.shape)
              for _ in range(n)]
    return np.stack(frames).astype(np.float32), GAIN * clean + OFFSET


def _true_variance(x):
    return GAIN * (x - OFFSET) + READ**2


def test_captures_give_the_cameras_variance_function():
    frames, clean = _captures()
    cal = engine.calibrate_noise(frames, "TYX")
    assert cal.frames == 4
    assert cal.kernel is None
    fitted = cal.variance(clean).mean()
    assert abs(fitted / _true_variance(clean).mean() - 1) < 0.02
    assert abs(cal.gain[0] / GAIN - 1) < 0.05



def test_captures_that_flicker_and_jitter_give_the_same_function():
    """Real repeated captures differ in brightness (a laser's power, bleaching) and, on a
    scanning microscope, by a fraction of a pixel: neither is noise."""
    rng = np.random.default_rng(5)
    clean = blobs(96, rng=5)
    ky = np.fft.fftfreq(96)[:, None]
    frames = []
    for brightness, shift in zip((0.85, 1.0, 1.15, 0.95), (0.3, -0.2, 0.0, 0.4)):
        moved = np.fft.ifft2(np.fft.fft2(brightness * clean) *
                             np.exp(-2j * np.pi * ky * shift)).real  # shifted along Y
        frames.append(GAIN * rng.poisson(np.maximum(moved, 0)) + rng.normal(OFFSET, READ,
                                                                            clean.shape))
    cal = engine.calibrate_noise(np.stack(frames).astype(np.float32), "TYX")
    reference = GAIN * clean + OFFSET
    assert abs(cal.variance(reference).mean() / _true_variance(reference).mean() - 1) < 0.05


def test_slow_uneven_changes_between_captures_are_not_noise():
    """Illumination that drifts unevenly over the field from one capture to the next (a few
    per cent, varying over tens of pixels) changes the field, not its noise: the variance and
    the (white) correlation are those of the camera."""
    rng = np.random.default_rng(7)
    clean = blobs(128, rng=7)
    yy, xx = np.mgrid[0:128, 0:128] / 128.0
    frames = []
    for _ in range(4):
        phase = rng.uniform(0, 2 * np.pi, 4)
        field = 1 + 0.03 * (np.sin(2 * np.pi * 1.5 * xx + phase[0]) * np.cos(2 * np.pi * yy + phase[1])
                            + np.sin(2 * np.pi * 2 * yy + phase[2]) * np.cos(2 * np.pi * xx + phase[3]))
        frames.append(GAIN * rng.poisson(clean * field) + rng.normal(OFFSET, READ, clean.shape))
    cal = engine.calibrate_noise(np.stack(frames).astype(np.float32), "TYX")
    reference = GAIN * clean + OFFSET
    assert abs(cal.variance(reference).mean() / _true_variance(reference).mean() - 1) < 0.02
    assert cal.kernel is None


def test_removing_slow_changes_keeps_the_noise_variance():
    """What the subtraction of the slow part takes of the noise itself is given back: white
    and correlated noise keep their variance (``drift.retained_share``)."""
    rng = np.random.default_rng(3)
    white = rng.normal(size=(8, 256, 256))
    kernel = np.array([[0.0, 0.3, 0.0], [0.3, 0.8, 0.3], [0.0, 0.3, 0.0]])
    kernel = (kernel / np.linalg.norm(kernel)).tolist()
    correlated = correlate_yx(torch.from_numpy(white), kernel).numpy()
    for noise, k in ((white, None), (correlated, kernel)):
        # a narrow smoothing, so that the share taken is large enough to tell apart
        share = retained_share(kernel_autocorrelation(k, 6), sd=2.0)
        assert share < 0.98
        kept = without_slow_changes(noise.copy(), sd=2.0)
        assert abs(np.mean(kept**2) / share / np.mean(noise**2) - 1) < 0.003


@pytest.mark.parametrize(("axes", "shape"), [("TYX", None), ("YXT", (1, 2, 0)),
                                         ("TCYX", "channels")])
def test_the_axes_place_the_captures(axes, shape):
    frames, _ = _captures(3)
    if shape == "channels":
        frames = np.stack([frames, 2 * frames], axis=1)
    elif shape is not None:
        frames = np.transpose(frames, shape)
    cal = engine.calibrate_noise(frames, axes)
    assert len(cal.gain) == (2 if axes == "TCYX" else 1)


def test_a_list_of_captures_is_accepted():
    frames, _ = _captures(3)
    cal = engine.calibrate_noise(list(frames), "YX")
    assert cal.frames == 3


def test_camera_numbers_give_the_same_function():
    cal = engine.NoiseCalibration.from_camera(GAIN, OFFSET, READ)
    x = np.array([OFFSET, 500.0, 2000.0])
    np.testing.assert_allclose(cal.variance(x), _true_variance(x))


def test_correlated_captures_get_a_kernel():
    rng = np.random.default_rng(3)
    white = rng.normal(0, 10, (4, 98, 98))
    frames = 500 + white[:, 1:-1, 1:-1] + white[:, 1:-1, 2:] + white[:, 1:-1, :-2]
    cal = engine.calibrate_noise(frames, "TYX")
    assert cal.kernel is not None


@pytest.mark.parametrize(("make", "message"), [
    (lambda f: f[:1], "two or more captures"),
    (lambda f: [f[0], f[1][:-4]], "different shapes"),
    (lambda f: np.stack([f[0], np.roll(f[1], 2, axis=1), f[2]]), "moves"),
    (lambda f: np.clip(f, None, np.quantile(f, 0.9)), "saturated"),
    (lambda f: f[:, :8, :8], "too small"),
])
def test_bad_captures_are_explained(make, message):
    frames, _ = _captures(3)
    with pytest.raises(InputError, match=message):
        engine.calibrate_noise(make(frames), "TYX")


def test_saturated_integer_captures_are_refused():
    frames, _ = _captures(3)
    frames = np.clip(frames / 8, 0, 255).astype(np.uint8)
    frames[:, :20, :20] = 255
    with pytest.raises(InputError, match="saturated"):
        engine.calibrate_noise(frames, "TYX")


def test_a_calibration_file_round_trips(tmp_path):
    cal = engine.calibrate_noise(_captures(3)[0], "TYX")
    path = cal.save(tmp_path / "camera.noise.json")
    assert engine.NoiseCalibration.load(path) == cal
    (tmp_path / "other.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(InputError, match="not a noise calibration"):
        engine.NoiseCalibration.load(tmp_path / "other.json")


def test_the_units_round_trip_through_a_model_file(tmp_path):
    frames, _ = _captures(3)
    cal = engine.calibrate_noise(frames, "TYX")
    model = engine.train(frames[0], "YX", tiny(steps=2, width=8), noise=cal)
    loaded = engine.load_model(engine.save_model(model, tmp_path / "m.gr2r.pt"))
    assert loaded.noise_level.source == "calibration"
    norm = loaded.normalization
    x = np.linspace(norm.low[0], norm.high[0], 5)
    xn = (x - norm.low[0]) / norm.scale(0)
    in_units = loaded.noise_level.variance(xn[None], channel_axis=0)[0] * norm.scale(0) ** 2
    np.testing.assert_allclose(in_units, cal.variance(x), rtol=1e-4)


def test_assess_uses_a_calibration():
    frames, clean = _captures(4)
    cal = engine.calibrate_noise(frames[:3], "TYX")
    report = engine.assess(lambda b: b, frames[3], "YX", noise=cal)
    # the identity's error is the noise: its estimate is the calibration's variance
    true = float(np.mean((frames[3] - clean) ** 2))
    assert abs(report.mse / true - 1) < 0.05
    assert report.to_dict()["noise"]["source"] == "calibration"  # a result layer records it
    with pytest.raises(InputError, match="channel"):
        engine.assess(lambda b: b, np.stack([frames[3]] * 2), "CYX", noise=cal)


def test_level_in_normalised_units_matches():
    cal = engine.NoiseCalibration.from_camera(GAIN, OFFSET, READ)
    norm = Normalization([200.0], [1200.0])
    level = cal.level(norm)
    x = np.array([300.0, 900.0])
    got = level.variance((x - 200.0)[None] / 1000.0, channel_axis=0)[0] * 1000.0**2
    np.testing.assert_allclose(got, _true_variance(x), rtol=1e-6)


def test_fit_noise_shows_a_calibration_over_the_image():
    frames, _ = _captures(4)
    cal = engine.calibrate_noise(frames[:3], "TYX")
    shown = engine.fit_noise(frames[3], "YX", noise=cal)
    assert shown.level.source == "calibration"
    assert shown.gain == pytest.approx(cal.gain)
    x = np.array([max(shown.floor[0], cal.black[0]) + 10, 600.0])  # above both floors
    assert shown.variance(x) == pytest.approx(cal.variance(x), rel=1e-6)
    assert shown.spread > 0  # the calibration's uncertainty, for the interval
    fitted = engine.fit_noise(frames[3], "YX")
    assert fitted.level.source != "calibration"


def test_a_capture_given_twice_is_left_out_with_a_warning():
    frames, _ = _captures(3)
    with pytest.warns(RuntimeWarning, match=r"Capture\(s\) 1 \(= capture 0\) repeat an earlier "
                                            r"one exactly and are left out; calibrating on 3"):
        twice = engine.calibrate_noise(np.stack([frames[0], frames[0], frames[1], frames[2]]),
                                       "TYX")
    once = engine.calibrate_noise(frames, "TYX")
    assert twice.frames == 3
    assert twice.gain == once.gain
    with pytest.raises(InputError, match="all the same image"):
        engine.calibrate_noise(np.stack([frames[0]] * 3), "TYX")


@pytest.mark.parametrize(("base", "height"), [(0.2, 10.0), (0.5, 4.0)])
def test_dim_captures_give_the_estimate_their_mean_variance_within_1_percent(base, height):
    """At a few photons per pixel each pixel's mean over four captures still holds much of
    the noise; the variance must be measured against what the estimate looks it up with (a
    local mean of one capture), or the estimate's noise reads a few per cent low."""
    read = 2 * GAIN  # two photons' worth of read noise
    errors = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        photons = blobs(128, rng=seed, base=base, height=height, ramp=0.01)
        frames = np.stack([GAIN * rng.poisson(photons) + rng.normal(OFFSET, read, photons.shape)
                           for _ in range(4)]).astype(np.float32)
        cal = engine.calibrate_noise(frames, "TYX")
        report = engine.assess(lambda b: b, frames[0], "YX", noise=cal)
        errors.append(report.noise_variance / float(np.mean(GAIN**2 * photons + read**2)) - 1)
    assert abs(np.mean(errors)) < 0.01, errors
