"""``TrainConfig``: a preset's values with the settings given, and files that keep their own."""

from __future__ import annotations

from napari_gr2r.engine import TrainConfig
from napari_gr2r.engine.config import NetworkConfig


def test_a_config_is_its_presets_values_with_the_settings_given():
    assert TrainConfig().flat() == TrainConfig.from_preset("balanced").flat()
    assert TrainConfig("quality").flat() == TrainConfig.from_preset("quality").flat()
    balanced = TrainConfig()
    assert (balanced.width, balanced.depth, balanced.members, balanced.steps) == (16, 2, 4, 620)
    assert balanced.resolved_gamma == 0.0
    fast = TrainConfig("fast", steps=1000)
    assert (fast.width, fast.steps, fast.members, fast.resolved_gamma) == (16, 1000, 1, 0.0)
    assert TrainConfig("quality").width == 48
    assert TrainConfig("balanced", method="gr2r-paper").resolved_gamma == 2.0
    own = TrainConfig("balanced", network=NetworkConfig(width=8))  # a whole section replaces
    assert (own.width, own.members, own.steps) == (8, 1, 620)


def test_a_file_written_before_the_presets_changed_loads_as_it_was_written():
    old = TrainConfig("balanced", width=32, depth=3, steps=2000, lr=1e-3, members=1).to_dict()
    old["objective"]["gamma"] = None  # the method's default then: 1
    del old["network"]["members"]  # written before ensembles
    again = TrainConfig.from_dict(old)
    assert (again.width, again.depth, again.steps, again.lr, again.members) == (32, 3, 2000, 1e-3, 1)
    assert again.resolved_gamma == 1.0
    flat = {"preset": "balanced", "width": 32, "depth": 3, "steps": 2000}  # before the sections
    again = TrainConfig.from_dict(flat)
    assert (again.width, again.members, again.resolved_gamma) == (32, 1, 1.0)
