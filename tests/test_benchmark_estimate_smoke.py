"""``python -m benchmarks.estimate`` at smoke size: one image, 60 steps, the report written."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("skimage")

from benchmarks import estimate


def test_estimate_benchmark_smoke(tmp_path):
    estimate.main(["--smoke", "--out", str(tmp_path)])
    report = (tmp_path / "estimate.md").read_text()
    assert "| camera / Gaussian σ=25 |" in report
    assert "Which weights to keep" in report
    record = json.loads((tmp_path / "estimate.json").read_text())["records"][0]
    assert [r["denoiser"] for r in record["rows"]] == ["fast", "fast@50", "blur", "identity"]
    identity = record["rows"][-1]
    assert abs(identity["error_db"]) < 0.5  # the identity's error is the noise variance itself
