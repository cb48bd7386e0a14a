"""``napari-gr2r calibrate`` and ``--noise`` on ``assess``."""

from __future__ import annotations

import json

import numpy as np
import tifffile

from napari_gr2r import engine
from napari_gr2r.cli import main
from tests.helpers import blobs, tiny_model


def _frames(n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    clean = blobs(64, 6, 1)
    return np.stack([2 * rng.poisson(clean) + rng.normal(100, 3, clean.shape)
                     for _ in range(n)]).astype(np.float32)


def test_calibrate_writes_a_calibration_that_assess_uses(tmp_path, capsys):
    frames = tmp_path / "frames.tif"
    tifffile.imwrite(frames, _frames())
    out = tmp_path / "camera.noise.json"
    assert main(["calibrate", str(frames), "-o", str(out)]) == 0
    assert "3 captures" in capsys.readouterr().out
    cal = engine.NoiseCalibration.load(out)
    assert cal.frames == 3
    assert abs(cal.gain[0] / 2 - 1) < 0.15
    model = tmp_path / "m.gr2r.pt"
    engine.save_model(tiny_model(), model)
    image = tmp_path / "image.tif"
    tifffile.imwrite(image, _frames(1)[0])
    report = tmp_path / "r.json"
    assert main(["assess", str(image), "--model", str(model), "--noise", str(out),
                 "--json", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "likely" in printed
    saved = json.loads(report.read_text())
    assert saved["noise"]["gain"][0] == cal.gain[0]  # the calibration, not a fit


def test_camera_numbers(tmp_path, capsys):
    out = tmp_path / "camera.noise.json"
    assert main(["calibrate", "-o", str(out), "--gain", "2", "--offset", "100",
                 "--read-noise", "3"]) == 0
    cal = engine.NoiseCalibration.load(out)
    assert cal.variance(np.array([600.0]))[0] == 2 * 500 + 9
    assert "variance 2·max(x, 100) − 191, white" in capsys.readouterr().out


def test_bad_calibration_input_is_one_line(tmp_path, capsys):
    frames = tmp_path / "one.tif"
    tifffile.imwrite(frames, _frames(1))
    assert main(["calibrate", str(frames), "--axes", "TYX", "-o",
                 str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err
    assert "two or more captures" in err
    assert "Traceback" not in err
    assert main(["calibrate", "-o", str(tmp_path / "c.json")]) == 2
    assert "--gain" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{}")
    assert main(["assess", str(frames), "--model", str(tmp_path / "x.pt"), "--noise",
                 str(tmp_path / "bad.json")]) == 2
    assert "not a noise calibration" in capsys.readouterr().err


def _correlated_frames(n: int) -> np.ndarray:
    """Captures of one field with camera noise correlated between neighbouring pixels."""
    from scipy.ndimage import uniform_filter

    rng = np.random.default_rng(0)
    clean = blobs(96, 6, 2)
    return np.stack([clean + 3 * uniform_filter(rng.normal(0, 10, clean.shape), 3)
                     for _ in range(n)]).astype(np.float32)


def test_train_on_fitted_correlated_noise_suggests_a_calibration(tmp_path, capsys):
    """The correlation fitted on one image can take fine structure for noise: training on it
    says that a calibration measures it exactly; with one, it does not."""
    frames = _correlated_frames(4)
    image, stack = tmp_path / "image.tif", tmp_path / "frames.tif"
    tifffile.imwrite(image, frames[0])
    tifffile.imwrite(stack, frames, photometric="minisblack")
    args = ["train", str(image), "-o", str(tmp_path / "m.gr2r.pt"), "--steps", "2"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "correlated between neighbouring pixels" in err
    assert "tip: the noise's correlation was fitted on the image" in err
    cal = tmp_path / "camera.noise.json"
    assert main(["calibrate", str(stack), "-o", str(cal)]) == 0
    assert main([*args[:-3], str(tmp_path / "c.gr2r.pt"), "--steps", "2", "--noise", str(cal)]) == 0
    err = capsys.readouterr().err
    assert "correlated between neighbouring pixels" in err
    assert "tip:" not in err
