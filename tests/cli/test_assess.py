"""``napari-gr2r assess`` and the estimated PSNR that ``train`` prints."""

from __future__ import annotations

import json
import re

import tifffile

from napari_gr2r import engine
from napari_gr2r.cli import main
from tests.helpers import tiny


def test_assess_prints_the_report_and_writes_json(tmp_path, gaussian2d, capsys):
    image = tmp_path / "noisy.tif"
    tifffile.imwrite(image, gaussian2d)
    model = engine.train(gaussian2d, "YX", tiny(steps=60))
    model_path = tmp_path / "m.gr2r.pt"
    engine.save_model(model, model_path)
    report_path = tmp_path / "report.json"
    assert main(["assess", str(image), "--model", str(model_path), "--data-range", "200",
                 "--json", str(report_path), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "estimated PSNR" in out
    assert "noise: sd" in out
    assert re.search(r"variance [0-9.e+-]+·x [+−] [0-9.e+]+, neighbour", out)  # no "+ -5"
    saved = json.loads(report_path.read_text())
    expected = engine.assess(model, gaussian2d, "YX", device="cpu")
    assert saved["mse"] == expected.mse
    assert f"estimated PSNR for data range 200: {expected.psnr(200):.2f} dB" in out


def test_assess_refuses_bad_arguments_in_one_line(tmp_path, gaussian2d, capsys):
    image = tmp_path / "noisy.tif"
    tifffile.imwrite(image, gaussian2d)
    assert main(["assess", str(image), "--model", str(tmp_path / "none.gr2r.pt")]) == 2
    model_path = tmp_path / "m.gr2r.pt"
    engine.save_model(engine.train(gaussian2d, "YX", tiny(steps=5)), model_path)
    assert main(["assess", str(image), "-m", str(model_path), "--probes", "0"]) == 2
    err = capsys.readouterr().err
    assert "--probes must be at least 1" in err
    assert "Traceback" not in err
