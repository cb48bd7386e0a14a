"""Checkpoints while training, and resuming an interrupted run where it left off."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from napari_gr2r import engine
from napari_gr2r.engine.training import resume as resume_module
from napari_gr2r.engine.training.resume import CheckpointClock
from tests.helpers import tiny


def _config(**overrides):
    return tiny(steps=60, val_every=10, event_every=10, width=8, batch_size=4, **overrides)


def _weights(model):
    return {k: v.detach().clone() for k, v in model.net.state_dict().items()}


@pytest.fixture(scope="module")
def uninterrupted(gaussian2d):
    return engine.train(gaussian2d, "YX", _config(), device="cpu")


def test_a_stopped_run_resumes_to_the_same_weights_as_an_uninterrupted_one(
        uninterrupted, gaussian2d, tmp_path):
    path = tmp_path / "run.gr2r.pt"
    trainer = engine.Trainer(gaussian2d, "YX", _config(), device="cpu", checkpoint_path=path)
    saved = []
    for event in trainer.iter_fit():
        if isinstance(event, engine.TrainingProgress) and event.step == 30:
            trainer.request_stop()
        if isinstance(event, engine.CheckpointSaved):
            saved.append((event.step, event.resumable))
        if isinstance(event, engine.TrainingFinished):
            assert event.stopped
    assert saved == [(30, True)]  # checkpoint_every is by the clock: only the final one here
    payload = torch.load(path, weights_only=True)
    assert payload["step"] == 30
    assert payload["training"]["run_steps"] == 60

    loaded = engine.load_model(path)
    resumed = engine.Trainer(gaussian2d, "YX", model=loaded, device="cpu",
                             checkpoint_path=path, resume=True)
    events = list(resumed.iter_fit())
    assert events[0].step == 30
    assert events[0].total_steps == 60
    assert events[-1].step == 60
    assert not events[-1].stopped
    model = resumed.model
    assert model.step == 60
    assert model.best_step == uninterrupted.best_step
    assert model.best_val_loss == uninterrupted.best_val_loss
    assert [row["step"] for row in model.history] == [10, 20, 30, 40, 50, 60]
    expected = [row["loss"] for row in uninterrupted.history]
    np.testing.assert_allclose([row["loss"] for row in model.history], expected, rtol=1e-6)
    for name, value in _weights(uninterrupted).items():
        assert torch.equal(_weights(model)[name], value), name
    # the finished run's file is a plain model: the best weights, no run state
    final = engine.load_model(path)
    assert final.step == 60
    assert final.training_state is None
    np.testing.assert_array_equal(engine.denoise(final, gaussian2d, "YX"),
                                  engine.denoise(uninterrupted, gaussian2d, "YX"))


def test_checkpoints_every_k_steps_hold_the_best_weights_so_far(gaussian2d, tmp_path):
    path = tmp_path / "run.gr2r.pt"
    trainer = engine.Trainer(gaussian2d, "YX", _config(checkpoint_every=20), device="cpu",
                             checkpoint_path=path)
    seen = []
    for event in trainer.iter_fit():
        if isinstance(event, engine.CheckpointSaved):
            model = engine.load_model(path)  # loadable at once, weights_only
            seen.append((event.step, event.resumable, model.step, model.training_state is not None))
            assert model.best_step <= model.step
            if model.training_state is not None:
                # the file's weights are the best so far; the run state has the current ones
                current = model.training_state["weights"]
                same = all(torch.equal(v, current[k]) for k, v in model.net.state_dict().items())
                assert same == (model.best_step == model.step)
                assert np.isfinite(engine.denoise(model, gaussian2d, "YX")).all()
    assert seen == [(20, True, 20, True), (40, True, 40, True), (60, False, 60, False)]
    assert path.stat().st_size > 0
    assert not list(tmp_path.glob("*.tmp"))


def test_the_default_checkpoint_interval_is_a_clock(monkeypatch):
    assert engine.TrainConfig().checkpoint_every is None
    now = [1000.0]  # the clock the checkpoints follow, moved by hand: no waiting
    monkeypatch.setattr(resume_module, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    clock = CheckpointClock(None, interval_s=0.05)
    assert not clock.due(1)
    now[0] += 0.06
    assert clock.due(2)
    assert not clock.due(3)
    assert [s for s in range(1, 11) if CheckpointClock(4).due(s)] == [4, 8]
    assert not any(CheckpointClock(0).due(s) for s in range(1, 11))
    with pytest.raises(engine.ConfigError, match="checkpoint_every"):
        engine.TrainConfig(checkpoint_every=-1)


def test_resume_needs_a_model_and_steps_left(uninterrupted, gaussian2d):
    with pytest.raises(engine.ConfigError, match="model"):
        engine.Trainer(gaussian2d, "YX", _config(), device="cpu", resume=True)
    with pytest.raises(engine.ConfigError, match="60 steps"):
        engine.Trainer(gaussian2d, "YX", _config(), model=uninterrupted, device="cpu",
                       resume=True)


def test_a_stopped_run_with_a_weight_average_resumes_to_the_same_weights(gaussian2d, tmp_path):
    config = _config(ema_decay=0.9)
    whole = engine.train(gaussian2d, "YX", config, device="cpu")
    path = tmp_path / "run.gr2r.pt"
    trainer = engine.Trainer(gaussian2d, "YX", config, device="cpu", checkpoint_path=path)
    for event in trainer.iter_fit():
        if isinstance(event, engine.TrainingProgress) and event.step == 30:
            trainer.request_stop()
    loaded = engine.load_model(path)
    assert loaded.training_state["ema_weights"] is not None
    resumed = engine.train(gaussian2d, "YX", model=loaded, device="cpu", resume=True)
    assert resumed.best_step == whole.best_step
    for name, value in _weights(whole).items():
        assert torch.equal(_weights(resumed)[name], value), name
