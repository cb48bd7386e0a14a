"""``python -m benchmarks.interval`` at smoke size: one image, one noise, a few steps."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("skimage")

from benchmarks import interval


def test_interval_benchmark_smoke(tmp_path, capsys):
    interval.main(["--images", "camera", "--noises", "gaussian", "--levels", "2", "--seeds",
                   "1", "--steps", "10", "--size", "64", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "interval.json").read_text())["rows"]
    assert [r["denoiser"] for r in rows] == ["fast", "blur"]
    for r in rows:
        assert r["low"] <= r["psnr"] <= r["high"]
        assert math.isfinite(r["true_psnr"])
        assert abs(r["variance_error"]) < 0.5
    assert "| gaussian | both | 2 |" in capsys.readouterr().out
