"""A run that blows up goes back to its best weights instead of wasting its budget."""

from __future__ import annotations

import math

import pytest
import torch

from napari_gr2r import engine
from napari_gr2r.engine.training import guard
from napari_gr2r.engine.training.guard import MAX_RECOVERIES, MAX_SKIPPED
from tests.helpers import psnr, tiny

WRECK = 3.0


def _train_wrecking(trainer: engine.Trainer, at: set[int] | None = None, every_from=None):
    """Train to the end, multiplying every weight by WRECK after the progress events of the
    steps ``at`` (or every validation from step ``every_from`` on): the blow-up."""
    events = []
    for event in trainer.iter_fit():
        events.append(event)
        step = getattr(event, "step", 0)
        if isinstance(event, engine.TrainingProgress) and (
                step in (at or ()) or (every_from and step >= every_from and step % 10 == 0)):
            with torch.no_grad():
                for p in trainer.net.parameters():
                    p.mul_(WRECK)
    return events


@pytest.mark.parametrize("rule", ["loss spike", "validation loss"])
def test_a_diverged_run_goes_on_from_its_best_weights(clean2d, gaussian2d, monkeypatch, rule):
    """The wrecked weights' training losses are spikes: the run goes back within a few steps.
    Without that rule, the next validation sends it back."""
    if rule == "validation loss":
        monkeypatch.setattr(guard, "SPIKE", math.inf)
    why = (r"3[1-9]: the loss stayed above 20 times its recent median for 5 steps"
           if rule == "loss spike" else r"40: the validation loss rose to .* from .*")
    trainer = engine.Trainer(gaussian2d, "YX", tiny(steps=80, val_every=10), device="cpu")
    with pytest.warns(engine.DivergenceWarning, match=rf"diverged at step {why}; back to the "
                      r"best weights \(step [1-3]0\), it goes on from them at 0.5 times the "
                      r"learning rate"):
        events = _train_wrecking(trainer, at={30})
    lrs = {e.step: e.lr for e in events if isinstance(e, engine.TrainingProgress)}
    history = {row["step"]: row for row in trainer.model.history}
    best_before = min(history[s]["val_loss"] for s in (10, 20, 30))
    # after the recovery the run trains on from the best weights: validation losses near the best
    assert max(history[s]["val_loss"] for s in (50, 60, 70, 80)) < 1.2 * best_before
    assert trainer.model.best_step >= 50  # and it improved on them
    assert lrs[50] < 0.5 * lrs[30]  # halved, on a schedule that was decaying anyway
    assert psnr(engine.denoise(trainer.model, gaussian2d, "YX"), clean2d) > \
        psnr(gaussian2d, clean2d) + 3


def test_a_run_that_keeps_diverging_stops_with_its_best_weights(gaussian2d):
    config = tiny(steps=200, val_every=10, batch_size=4)
    trainer = engine.Trainer(gaussian2d, "YX", config, device="cpu")
    with pytest.warns(engine.DivergenceWarning, match="it stops there with those weights"):
        events = _train_wrecking(trainer, every_from=30)
    last = events[-1]
    assert isinstance(last, engine.TrainingFinished)
    assert last.stopped
    assert last.step < 200
    assert last.best_step <= 30
    assert trainer.model.run.unfinished is not None  # a stopped run: it can be resumed
    assert len([r for r in trainer.model.history if "val_loss" in r]) <= 3 + MAX_RECOVERIES


def test_non_finite_gradients_skip_the_step_and_a_run_of_them_fails(gaussian2d):
    trainer = engine.Trainer(gaussian2d, "YX", tiny(steps=60, val_every=10, batch_size=4),
                             device="cpu")
    events = trainer.iter_fit()
    for event in events:
        if isinstance(event, engine.TrainingProgress) and event.step == 20:
            break
    first = next(trainer.net.parameters())
    first.register_hook(lambda grad: torch.full_like(grad, math.nan))  # every step from here
    with pytest.raises(engine.NumericalError, match=f"and the {MAX_SKIPPED - 1} steps before"), \
            pytest.warns(engine.DivergenceWarning, match="the loss became NaN or infinite"):
        list(events)  # skipped steps, recoveries, then the error
    after = trainer.net.state_dict()  # the best weights, not NaN from the skipped steps
    assert all(torch.isfinite(v).all() for v in after.values())


def test_an_outlier_batch_is_skipped_and_the_run_goes_on(clean2d, gaussian2d):
    """One batch fifty times as bright as the image (a loss thousands of times the usual one)
    must not update the weights; the steps around it do."""
    trainer = engine.Trainer(gaussian2d, "YX", tiny(steps=60, val_every=20), device="cpu")
    sample, calls, weights = trainer.sampler.batch, [0], {}

    def batch(n):
        calls[0] += 1
        weights[calls[0]] = [p.detach().clone() for p in trainer.net.parameters()]
        arrays = sample(n)
        return [a * 50 for a in arrays] if calls[0] == 40 else arrays

    trainer.sampler.batch = batch
    list(trainer.iter_fit())
    unchanged = {k: all(torch.equal(a, b) for a, b in zip(weights[k], weights[k + 1]))
                 for k in (39, 40)}
    assert unchanged == {39: False, 40: True}
    assert psnr(engine.denoise(trainer.model, gaussian2d, "YX"), clean2d) > \
        psnr(gaussian2d, clean2d) + 3
