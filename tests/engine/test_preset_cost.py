"""The preset costs that ``TrainConfig.from_preset`` states are the counted ones."""

from __future__ import annotations

import pytest
from benchmarks.preset_cost import step_cost, table

from napari_gr2r.engine import TrainConfig


def test_the_stated_work_ratios_are_the_counted_ones():
    _, fast, fast_steps = step_cost("fast", 2)
    ratios = {(p, d): step_cost(p, d) for p, d in
              (("balanced", 2), ("quality", 2), ("quality", 3))}
    per_step = {key: flops / fast for key, (_, flops, _) in ratios.items()}
    per_run = {key: flops * steps / (fast * fast_steps) for key, (_, flops, steps) in ratios.items()}
    assert per_step[("balanced", 2)] == pytest.approx(4, abs=0.01)  # four fast networks
    assert per_run[("balanced", 2)] == pytest.approx(4, abs=0.01)
    assert ratios[("balanced", 2)][0] == 4 * step_cost("fast", 2)[0]
    assert per_step[("quality", 2)] == pytest.approx(107, abs=0.5)
    assert per_run[("quality", 2)] == pytest.approx(3500, rel=0.05)
    assert per_step[("quality", 3)] == pytest.approx(5700, rel=0.05)
    doc = TrainConfig.from_preset.__doc__
    for words in ("4x", "107x", "3500x", "5700x", "118k", "472k", "4.4M"):
        assert words in doc, words
    assert len(table()) == 6
