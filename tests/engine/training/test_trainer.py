"""Training raises PSNR for every method, stops promptly, reproduces, and reports collapse."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_gr2r import engine
from tests.helpers import psnr, tiny


def _train_and_score(noisy, clean, axes="YX", target=None, events=None, **overrides):
    trainer = engine.Trainer(noisy, axes, tiny(**overrides), target=target)
    model = trainer.fit(events.append if events is not None else None)
    return psnr(noisy, clean), psnr(engine.denoise(model, noisy, axes), clean)


def test_gr2r_default_gains_3db_on_gaussian_noise(gaussian2d, clean2d):
    events = []
    before, after = _train_and_score(gaussian2d, clean2d, steps=200, events=events)
    assert after > before + 3, (before, after)
    assert not any(isinstance(e, engine.CollapseDetected) for e in events)
    assert not events[-1].collapsed


@pytest.mark.parametrize("method", ["gr2r", "gr2r-paper", "r2r", "n2c"])
def test_every_method_improves_poisson_gaussian_noise(method, poisson2d):
    noisy, clean = poisson2d
    extra = {}
    if method == "r2r":
        extra = dict(noise_model="poisson-gaussian", noise_gain=1.0, noise_sigma=1.0,
                     noise_offset=10.0)
    target = clean if method == "n2c" else None
    before, after = _train_and_score(noisy, clean, method=method, target=target, steps=80,
                                     **extra)
    assert after > before + 1, (method, before, after)


@pytest.mark.parametrize("method", ["gr2r-paper", "r2r", "n2c"])
def test_other_methods_improve_gaussian_noise(method, gaussian2d, clean2d):
    extra = {"noise_sigma": 25.0} if method == "r2r" else {}
    target = clean2d if method == "n2c" else None
    before, after = _train_and_score(gaussian2d, clean2d, method=method, target=target,
                                     steps=80, **extra)
    assert after > before + 1, (method, before, after)


def test_events_are_typed_and_complete(gaussian2d):
    trainer = engine.Trainer(gaussian2d, "YX", tiny(steps=30, gamma=1.0))  # with every term
    events = list(trainer.iter_fit())
    assert isinstance(events[0], engine.TrainingStarted)
    assert isinstance(events[-1], engine.TrainingFinished)
    progress = [e for e in events if isinstance(e, engine.TrainingProgress)]
    assert [e.step for e in progress] == [10, 20, 30]
    last = progress[-1]
    assert set(last.terms) == {"unsupervised", "pseudo"}
    assert last.val_loss is not None
    assert last.validated
    assert last.residual_energy > 0
    assert last.patches_per_s > 0
    assert last.lr > 0
    assert trainer.model.step == 30
    assert len(trainer.model.history) == 3


def test_stop_ends_within_one_step_and_keeps_best_weights(gaussian2d):
    trainer = engine.Trainer(gaussian2d, "YX", tiny(steps=1000, event_every=5, val_every=10))
    for event in trainer.iter_fit():
        if isinstance(event, engine.TrainingProgress) and event.step == 20:
            trainer.request_stop()
        last = event
    assert isinstance(last, engine.TrainingFinished)
    assert last.stopped
    assert last.step == 20
    assert last.best_step in (10, 20)
    assert trainer.model.step == 20


def test_seeded_runs_are_reproducible(gaussian2d):
    histories = []
    for _ in range(2):
        model = engine.train(gaussian2d, "YX", tiny(steps=20, seed=3))
        histories.append([(row["step"], row["loss"]) for row in model.history])
    assert histories[0] == histories[1]


def test_input_is_never_modified(gaussian2d):
    copy = gaussian2d.copy()
    model = engine.train(gaussian2d, "YX", tiny(steps=10))
    engine.denoise(model, gaussian2d, "YX")
    np.testing.assert_array_equal(copy, gaussian2d)


def test_paper_objective_collapse_is_detected(gaussian2d):
    # A residual network f(y) = y + g(y) starts next to the identity, the trivial minimum of
    # equation 14, and the paper's objective keeps it there.
    trainer = engine.Trainer(gaussian2d, "YX", tiny(method="gr2r-paper", residual=True,
                                                    steps=100))
    with pytest.warns(engine.CollapseWarning):
        events = list(trainer.iter_fit())
    collapse = [e for e in events if isinstance(e, engine.CollapseDetected)]
    assert len(collapse) == 1
    assert "collapsing" in collapse[0].message
    assert collapse[0].residual_energy < 0.3 * collapse[0].noise_variance
    assert events[-1].collapsed


def test_n2c_needs_a_target(gaussian2d):
    with pytest.raises(engine.InputError, match="target"):
        engine.Trainer(gaussian2d, "YX", tiny(method="n2c"))


def test_too_small_to_train():
    with pytest.raises(engine.InputError, match="at least 16x16"):
        engine.Trainer(np.zeros((10, 40), np.float32), "YX", tiny())


def test_multichannel_and_stack_training(clean2d):
    rng = np.random.default_rng(0)
    stack = np.stack([clean2d, clean2d[::-1]], axis=-1)  # YXC
    noisy = stack + rng.normal(0, 20, stack.shape).astype(np.float32)
    model = engine.train(noisy, "YXC", tiny(steps=20))
    assert model.channels == 2
    out = engine.denoise(model, noisy, "YXC")
    assert out.shape == noisy.shape
    tstack = noisy.transpose(2, 0, 1)[:, None]  # T, Z=1... as TZYX would need Z>1: use TYX
    model_t = engine.train(tstack[:, 0], "TYX", tiny(steps=10))
    assert engine.denoise(model_t, tstack[:, 0], "TYX").shape == tstack[:, 0].shape


def test_the_weight_average_denoises_and_is_what_training_keeps(gaussian2d, clean2d):
    plain = engine.train(gaussian2d, "YX", tiny(steps=100, ema_decay=None), device="cpu")
    events = []
    model = engine.train(gaussian2d, "YX", tiny(steps=100, ema_decay=0.95), device="cpu",
                         callback=events.append)
    assert not events[-1].collapsed
    before = psnr(gaussian2d, clean2d)
    after = psnr(engine.denoise(model, gaussian2d, "YX"), clean2d)
    assert after > before + 3, (before, after)
    weights = [p.detach() for p in model.net.parameters()]
    assert any(not torch.equal(a, p.detach()) for a, p in zip(weights, plain.net.parameters()))
