"""napari_gr2r.denoise_image: a plain function for workflows, with the model loaded once."""

from __future__ import annotations

import numpy as np
import pytest

import napari_gr2r
from napari_gr2r import engine, workflows
from tests.helpers import tiny


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, gaussian2d):
    path = tmp_path_factory.mktemp("wf") / "m.gr2r.pt"
    engine.save_model(engine.train(gaussian2d, "YX", tiny(steps=3), device="cpu"), path)
    return path


def test_denoise_image_matches_the_engine_and_caches_the_model(model_file, gaussian2d):
    workflows.clear_model_cache()
    out = napari_gr2r.denoise_image(gaussian2d, model_file)
    model = engine.load_model(model_file)
    np.testing.assert_allclose(out, engine.denoise(model, gaussian2d, "YX"), atol=1e-5)
    assert out.shape == gaussian2d.shape
    assert out.dtype == np.float32
    first = workflows.load_cached_model(model_file)
    assert workflows.load_cached_model(str(model_file)) is first  # loaded once per path
    # a model file saved again (another model) is loaded again
    engine.save_model(engine.train(gaussian2d, "YX", tiny(steps=1, seed=5), device="cpu"),
                      model_file)
    assert workflows.load_cached_model(model_file) is not first


def test_denoise_image_errors_are_the_engines(tmp_path, gaussian2d):
    with pytest.raises((FileNotFoundError, engine.GR2RError)):
        napari_gr2r.denoise_image(gaussian2d, tmp_path / "missing.gr2r.pt")
    with pytest.raises(AttributeError):
        napari_gr2r.no_such_name  # noqa: B018
