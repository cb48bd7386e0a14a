"""Model files round-trip, resume training, are written atomically and refuse foreign input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_gr2r import engine
from tests.helpers import tiny


@pytest.fixture(scope="module")
def trained(gaussian2d):
    return engine.train(gaussian2d, "YX", tiny(steps=20))


def test_round_trip_gives_the_same_denoising(trained, gaussian2d, tmp_path):
    path = engine.save_model(trained, tmp_path / "m.gr2r.pt")
    loaded = engine.load_model(path)
    assert loaded.axes == "YX"
    assert loaded.step == 20
    assert loaded.config == trained.config
    assert loaded.normalization == trained.normalization
    np.testing.assert_array_equal(engine.denoise(loaded, gaussian2d, "YX"),
                                  engine.denoise(trained, gaussian2d, "YX"))
    payload = torch.load(path, weights_only=True)
    assert payload["versions"]["torch"] == torch.__version__
    assert payload["optimizer"]["state"]


def test_training_resumes_from_a_file(trained, gaussian2d, tmp_path):
    path = engine.save_model(trained, tmp_path / "m.gr2r.pt")
    resumed = engine.train(gaussian2d, "YX", tiny(steps=10), model=engine.load_model(path))
    assert resumed.step == 30
    assert [row["step"] for row in resumed.history][-3:] == [10, 20, 30]


def test_corrupt_and_foreign_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.gr2r.pt"
    garbage.write_bytes(b"this is not a model")
    with pytest.raises(engine.CheckpointError, match="not a napari-gr2r model file"):
        engine.load_model(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(engine.CheckpointError, match="not a napari-gr2r model"):
        engine.load_model(foreign)
    with pytest.raises(engine.CheckpointError, match="No model file"):
        engine.load_model(tmp_path / "missing.gr2r.pt")


def test_truncated_file_is_refused(trained, tmp_path):
    path = engine.save_model(trained, tmp_path / "m.gr2r.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(engine.CheckpointError):
        engine.load_model(path)


def test_failed_save_leaves_the_old_file(trained, tmp_path, monkeypatch):
    path = engine.save_model(trained, tmp_path / "m.gr2r.pt")
    before = path.read_bytes()

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        engine.save_model(trained, path)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]
