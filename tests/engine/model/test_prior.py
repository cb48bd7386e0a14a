"""The pretrained start of the fast network (TrainConfig(start="prior"))."""

import numpy as np
import pytest
import torch

from napari_gr2r import engine
from napari_gr2r.engine.model.prior import MEMBER_PRIORS, PRIOR_PATH, prior_weights
from napari_gr2r.sample_data import load_sample
from tests.helpers import psnr


def _same_as_prior(net: torch.nn.Module, index: int = 0) -> bool:
    prior = prior_weights(index)
    return all(torch.equal(prior[k], v) for k, v in net.state_dict().items())


def test_the_prior_alone_denoises_a_sample_it_never_saw():
    # the prior was trained on generated scenes only; before a single step the fast model is
    # the prior, scaled to this image
    noisy, clean, _ = load_sample("nuclei2d")
    trainer = engine.Trainer(noisy, "YX", engine.TrainConfig("fast", steps=1), device="cpu")
    assert trainer.config.start == "prior"
    assert _same_as_prior(trainer.net)
    out = engine.denoise(trainer.model, noisy, axes="YX", device="cpu")
    assert psnr(out, clean) > psnr(noisy, clean) + 5


def test_fast_adapts_the_prior_at_its_own_learning_rate_and_says_so():
    rng = np.random.default_rng(0)
    image = rng.normal(100, 5, (64, 64)).astype(np.float32)
    config = engine.TrainConfig("fast", steps=20, event_every=10, val_every=10)
    trainer = engine.Trainer(image, "YX", config, device="cpu")
    events = list(trainer.iter_fit())
    started = events[0]
    assert isinstance(started, engine.TrainingStarted)
    assert started.start == "prior"
    assert started.networks == "a 2D network from the pretrained prior"
    lrs = [e.lr for e in events if isinstance(e, engine.TrainingProgress)]
    assert lrs
    assert max(lrs) <= config.prior_lr < config.lr
    assert not _same_as_prior(trainer.model_.net)  # it trained
    # continuing the model goes on from its own weights
    again = engine.Trainer(image, "YX", config, model=trainer.model, device="cpu")
    assert next(iter(again.iter_fit())).start == "model"


@pytest.mark.parametrize(("data", "axes", "settings"), [
    (np.zeros((2, 48, 48), np.float32), "CYX", {}),               # two channels
    (np.zeros((48, 48), np.float32), "YX", {"width": 8}),         # another width
    (np.zeros((48, 48), np.float32), "YX", {"residual": True}),   # another network
])
def test_a_network_the_prior_does_not_fit_starts_from_scratch_at_lr(data, axes, settings):
    data = data + np.random.default_rng(1).normal(0, 1, data.shape).astype(np.float32)
    trainer = engine.Trainer(data, axes, engine.TrainConfig("fast", steps=1, **settings),
                             device="cpu")
    assert trainer.config.start == "scratch"
    assert trainer.model.config.start == "scratch"
    assert trainer.config.peak_lr == trainer.config.lr


def test_start_is_checked_kept_in_the_model_file_and_chosen_by_preset(tmp_path):
    with pytest.raises(engine.ConfigError, match="start must be one of scratch, prior"):
        engine.TrainConfig("fast", start="pretrained")
    assert engine.TrainConfig("balanced").start == "prior"
    assert engine.TrainConfig("quality").start == "scratch"
    assert engine.TrainConfig("fast", start="scratch").peak_lr == 2e-3
    image = np.random.default_rng(2).normal(0, 1, (48, 48)).astype(np.float32)
    model = engine.train(image, axes="YX", config=engine.TrainConfig("fast", steps=1),
                         device="cpu")
    engine.save_model(model, tmp_path / "m.gr2r.pt")
    assert engine.load_model(tmp_path / "m.gr2r.pt").config.start == "prior"
    # the file is plain tensors
    assert set(torch.load(PRIOR_PATH, weights_only=True)) == set(model.net.state_dict())


def test_make_prior_writes_a_prior_the_fast_network_takes(tmp_path):
    from scripts import make_prior

    out = tmp_path / "prior.pt"
    make_prior.main([str(out), "--steps", "2", "--pairs", "8"])
    weights = torch.load(out, weights_only=True)
    net = engine.Trainer(np.zeros((48, 48), np.float32) + np.random.default_rng(3).normal(
        0, 1, (48, 48)).astype(np.float32), "YX", engine.TrainConfig("fast", steps=1),
        device="cpu").net
    net.load_state_dict(weights)  # same keys and shapes


def test_an_ensemble_s_members_start_from_different_priors():
    # members from one prior stay alike; each of four starts from its own (MEMBER_PRIORS)
    image = np.random.default_rng(4).normal(0, 1, (48, 48)).astype(np.float32)
    trainer = engine.Trainer(image, "YX", engine.TrainConfig("fast", steps=1, members=6),
                             device="cpu")
    members = trainer.net.members
    assert len(MEMBER_PRIORS) == 4
    assert all(path.is_file() for path in MEMBER_PRIORS)
    for i, member in enumerate(members):
        assert _same_as_prior(member, i % 4)
    assert not _same_as_prior(members[1], 0)
    weights = [prior_weights(k)["head.weight"] for k in range(4)]
    assert all(not torch.equal(weights[i], weights[j]) for i in range(4) for j in range(i))
    started = next(iter(trainer.iter_fit()))
    assert started.networks == "an ensemble of 6 2D networks from pretrained priors"
