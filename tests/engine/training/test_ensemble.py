"""An ensemble (``members``): each member learns to denoise, their mean does at least as well as
they do on average, and the model file and its package keep every member."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_gr2r import engine
from napari_gr2r.engine.errors import ConfigError
from napari_gr2r.engine.model.networks import Ensemble
from tests.helpers import psnr, tiny


@pytest.fixture(scope="module")
def ensemble_model(gaussian2d):
    return engine.train(gaussian2d, "YX", tiny(steps=120, width=8, members=3))


def test_every_member_denoises_and_their_mean_beats_their_average_error(ensemble_model,
                                                                         gaussian2d, clean2d):
    model = ensemble_model
    assert isinstance(model.net, Ensemble)
    assert len(model.net.members) == 3
    mean = engine.denoise(model, gaussian2d, "YX")
    errors = []
    for member in model.net.members:
        single = engine.GR2RModel(**{**vars(model), "net": member})
        out = engine.denoise(single, gaussian2d, "YX")
        assert psnr(out, clean2d) > psnr(gaussian2d, clean2d) + 3
        errors.append(np.mean((out - clean2d) ** 2))
    # the members differ (their own weights, patches and noise draws) ...
    weights = [m.head.weight.detach() for m in model.net.members]
    assert not torch.allclose(weights[0], weights[1])
    # ... and the mean's squared error is at most their average (the mean of squares bounds
    # the square of the mean)
    assert np.mean((mean - clean2d) ** 2) <= np.mean(errors)


def test_an_ensemble_round_trips_through_its_model_file(ensemble_model, gaussian2d, tmp_path):
    path = tmp_path / "ensemble.gr2r.pt"
    engine.save_model(ensemble_model, path)
    loaded = engine.load_model(path)
    assert isinstance(loaded.net, Ensemble)
    assert loaded.config.members == 3
    np.testing.assert_allclose(engine.denoise(loaded, gaussian2d, "YX"),
                               engine.denoise(ensemble_model, gaussian2d, "YX"), atol=1e-3)


@pytest.mark.parametrize("members", [0, 17, 2.5])
def test_members_out_of_range_is_refused_in_one_line(members):
    with pytest.raises(ConfigError, match="members") as err:
        engine.TrainConfig(members=members)
    assert "\n" not in str(err.value)


def test_a_bioimageio_package_of_an_ensemble_passes_bioimageio_test_model(
        ensemble_model, gaussian2d, tmp_path, monkeypatch):
    bioimageio_core = pytest.importorskip("bioimageio.core")
    import httpx

    def refuse(*args, **kwargs):
        raise httpx.ConnectError("offline")

    monkeypatch.setattr(httpx, "request", refuse)
    monkeypatch.setattr(httpx, "stream", refuse)
    from napari_gr2r.engine.export.bioimageio import export_bioimageio

    package = export_bioimageio(ensemble_model, tmp_path / "ensemble.zip", test_input=gaussian2d)
    summary = bioimageio_core.test_model(package)
    failures = [f"{d.name}: {[e.msg[:200] for e in d.errors]}" for d in summary.details
                if d.status != "passed"]
    assert summary.status == "passed", failures
