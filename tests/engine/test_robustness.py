"""Data-loss and silent-wrong-result holes of the engine, each closed at its cause.

Outputs that would destroy the input, non-finite values in and out, two runs writing one zarr
store, numeric arguments, a stop requested before training starts, torch tensors, tiny and
huge intensity ranges, stale temporaries and file permissions of atomic writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from napari_gr2r import engine
from napari_gr2r.engine import (
    CheckpointError,
    ConfigError,
    GR2RError,
    InputError,
    TrainConfig,
)
from napari_gr2r.engine.io.omezarr import open_result
from tests.helpers import tiny, tiny_model

ROOT = Path(__file__).resolve().parents[2]


def image(shape=(48, 40), seed=0, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(seed).uniform(100, 1100, shape).astype(dtype)


def tree_digest(path: Path) -> str:
    """A digest of every file under ``path`` (names and bytes)."""
    digest = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            digest.update(str(p.relative_to(path)).encode())
            digest.update(p.read_bytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# outputs that are, contain or lie inside the input


def _zarr_array(path: Path) -> None:
    zarr.save_array(str(path), image())


def _ome_group(path: Path) -> None:
    group = zarr.open_group(str(path), mode="w")
    group.create_array("0", data=image())
    group.attrs["multiscales"] = [{"version": "0.4", "datasets": [{"path": "0"}],
                                   "axes": [{"name": "y", "type": "space"},
                                            {"name": "x", "type": "space"}]}]


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize(("make", "given", "out"), [
    (_zarr_array, "object", "in.zarr"),           # the array itself, opened read-only
    (_zarr_array, "path", "in.zarr"),
    (_ome_group, "path", "in.zarr/0"),            # an OME-Zarr group in, its level 0 out
    (_ome_group, "object", "in.zarr/0"),
    (_ome_group, "path", "in.zarr/denoised"),     # inside the input's store
    (_zarr_array, "path", "in.zarr/sub"),
    (_ome_group, "path", "."),                    # the folder holding the input
])
def test_an_output_overlapping_the_input_is_refused(tmp_path, monkeypatch, make, given, out,
                                                    overwrite):
    monkeypatch.chdir(tmp_path)
    make(tmp_path / "in.zarr")
    before = tree_digest(tmp_path)
    data = "in.zarr"
    if given == "object":
        data = zarr.open_array("in.zarr/0" if make is _ome_group else "in.zarr", mode="r")
    with pytest.raises(InputError, match="input") as err:
        engine.denoise_to_zarr(tiny_model(), data, "YX", out, overwrite=overwrite)
    assert "overwrite" not in str(err.value)  # never advises overwriting the input
    assert "another output" in str(err.value)
    assert tree_digest(tmp_path) == before


# --------------------------------------------------------------------------------------------
# non-finite values: in the input, in a model file, in a result


def test_values_beyond_float32_are_refused_before_anything_runs():
    big = image().astype(np.float64)
    big[5, 5] = 1e39
    for run in (lambda: engine.denoise(tiny_model(), big, "YX"),
                lambda: engine.train(big, "YX", tiny(steps=2))):
        with pytest.raises(InputError, match="float32") as err:
            run()
        assert "learning rate" not in str(err.value)
        assert "divide" in str(err.value)


def _saved(tmp_path, change) -> Path:
    model = tiny_model()
    change(model)
    return engine.save_model(model, tmp_path / "m.gr2r.pt")


@pytest.mark.parametrize(("change", "words"), [
    (lambda m: next(m.net.parameters()).data.fill_(float("nan")), "NaN or infinite weights"),
    (lambda m: next(m.net.parameters()).data.fill_(float("inf")), "NaN or infinite weights"),
    (lambda m: setattr(m.normalization, "high", [100.0]), "normalisation"),
    (lambda m: setattr(m.normalization, "low", [float("nan")]), "normalisation"),
    (lambda m: setattr(m.noise_level, "b", [float("nan")]), "noise level"),
])
def test_a_model_file_with_non_finite_or_degenerate_values_is_refused_at_load(tmp_path, change,
                                                                              words):
    path = _saved(tmp_path, change)
    with pytest.raises(CheckpointError, match=words) as err:
        engine.load_model(path)
    assert "train" in str(err.value).lower()


def _overflowing_model() -> engine.GR2RModel:
    """Finite weights whose output overflows float32: the result would be infinite."""
    model = tiny_model()
    with torch.no_grad():
        for p in model.net.parameters():
            p.fill_(1e30)
    return model


def test_a_non_finite_result_is_never_returned(tmp_path):
    with pytest.raises(engine.NumericalError, match="NaN or infinite"):
        engine.denoise(_overflowing_model(), image(), "YX")
    out = tmp_path / "out.zarr"
    with pytest.raises(engine.NumericalError, match="NaN or infinite"):
        engine.denoise_to_zarr(_overflowing_model(), image(), "YX", str(out))
    state = open_result(str(out), mode="r").attrs["napari_gr2r"]
    assert state["blocks_done"] == 0
    assert not state["complete"]


# --------------------------------------------------------------------------------------------
# two runs into one zarr store


_HOLDER = textwrap.dedent("""
    import sys
    import numpy as np
    from napari_gr2r import engine
    from tests.engine.test_robustness import image
    from tests.helpers import tiny_model
    gen = engine.iter_denoise_to_zarr(tiny_model(seed=1), image((64, 64)), "YX", sys.argv[1],
                                      chunks=16)
    next(gen); next(gen)
    print("claimed", flush=True)
    sys.stdin.readline()
    for _ in gen:
        pass
    print("done", flush=True)
""")


def test_a_second_run_into_a_store_in_use_fails_clearly(tmp_path):
    out = tmp_path / "out.zarr"
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "claimed"
        for overwrite in (False, True):
            with pytest.raises(InputError, match="another napari-gr2r run") as err:
                engine.denoise_to_zarr(tiny_model(seed=2), image((64, 64)), "YX", str(out),
                                       chunks=16, overwrite=overwrite)
            assert str(holder.pid) in str(err.value)
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "done"
    finally:
        holder.kill()
        holder.wait(30)
    result = open_result(str(out), mode="r")
    assert result.attrs["napari_gr2r"]["complete"]
    np.testing.assert_allclose(result[...], engine.denoise(tiny_model(seed=1), image((64, 64)),
                                                           "YX"), rtol=1e-5, atol=1e-3)
    with pytest.raises(InputError, match="another model"):  # a rerun skips no foreign block
        engine.denoise_to_zarr(tiny_model(seed=2), image((64, 64)), "YX", str(out), chunks=16)
    assert not list(tmp_path.glob("*lock*"))


def test_the_owner_record_is_checked_before_each_block_is_marked_done(tmp_path):
    out = str(tmp_path / "out.zarr")
    gen = engine.iter_denoise_to_zarr(tiny_model(), image((64, 64)), "YX", out, chunks=16)
    next(gen)
    next(gen)
    arr = open_result(out, mode="r+")
    state = dict(arr.attrs["napari_gr2r"])
    state["owner"] = dict(state["owner"], token="someone-else")
    arr.attrs["napari_gr2r"] = state
    with pytest.raises(InputError, match="another napari-gr2r run"):
        next(gen)
    assert open_result(out, mode="r").attrs["napari_gr2r"]["blocks_done"] == 1


def test_a_stale_claim_of_a_dead_process_is_taken_over(tmp_path):
    out = tmp_path / "out.zarr"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gen = engine.iter_denoise_to_zarr(tiny_model(), image(), "YX", str(out))
    next(gen)
    lock = next(tmp_path.glob(".out.zarr*lock*"))
    gen.close()
    assert not lock.exists()
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "token": "x"}))
    engine.denoise_to_zarr(tiny_model(), image(), "YX", str(out))
    assert open_result(str(out), mode="r").attrs["napari_gr2r"]["complete"]
    assert not lock.exists()


# --------------------------------------------------------------------------------------------
# numeric arguments


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"batch_size": -1}, "batch_size"), ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 1.5}, "batch_size"), ({"batch_size": True}, "batch_size"),
    ({"batch_size": "4"}, "batch_size"),
    ({"tile": 0}, "tile"), ({"tile": 1}, "tile"), ({"tile": 2}, "tile"), ({"tile": -3}, "tile"),
    ({"tile": "64"}, "tile"), ({"tile": (64, 64, 64)}, "tile"), ({"tile": 64.0}, "tile"),
    ({"overlap": -1}, "overlap"), ({"tile": 32, "overlap": 32}, "overlap"),
    ({"overlap": 1.5}, "overlap"),
    ({"device": "tpu"}, "device"), ({"device": 3}, "device"),
])
def test_bad_numeric_arguments_of_denoise_are_explained(kwargs, words):
    with pytest.raises(GR2RError, match=words):
        engine.denoise(tiny_model(), image(), "YX", **kwargs)


@pytest.mark.parametrize("chunks", [0, -4, (16,), 2.5, "16"])
def test_bad_chunks_of_denoise_to_zarr_are_explained(tmp_path, chunks):
    with pytest.raises(GR2RError, match="chunks"):
        engine.denoise_to_zarr(tiny_model(), image(), "YX", str(tmp_path / "o.zarr"),
                               chunks=chunks)
    assert not (tmp_path / "o.zarr").exists()


@pytest.mark.parametrize(("field", "value"), [
    ("lr", float("nan")), ("lr", float("inf")), ("gamma", float("nan")), ("gamma", -1.0),
    ("lambda_g", float("inf")), ("lr_min_factor", -0.1), ("lr_min_factor", 2.0),
    ("lr_min_factor", float("nan")), ("warmup_steps", -1), ("warmup_steps", 2.5),
    ("val_fraction", float("nan")), ("collapse_fraction", float("nan")),
    ("collapse_fraction", -1.0), ("seed", -1), ("seed", 1.5), ("steps", 10.0),
    ("noise_offset", float("nan")), ("r2r_alpha", float("nan")), ("augment", "yes"),
    ("residual", 2), ("pin_noise", "no"),
])
def test_bad_training_settings_are_explained(field, value):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value})


def test_gr2r_r2r_noise_values_must_be_finite():
    with pytest.raises(ConfigError, match="noise_sigma"):
        TrainConfig(method="r2r", noise_sigma=float("nan"))
    with pytest.raises(ConfigError, match="noise_gain"):
        TrainConfig(method="r2r", noise_sigma=1.0, noise_model="poisson-gaussian",
                    noise_gain=float("inf"))


def test_numpy_integers_are_valid_settings():
    config = TrainConfig(steps=np.int64(5), batch_size=np.int32(2), seed=np.int64(3))
    assert config.steps == 5
    assert isinstance(config.steps, int)


def test_unknown_setting_names_are_explained():
    with pytest.raises(ConfigError, match="stpes"):
        TrainConfig.from_preset("fast", stpes=5)


# --------------------------------------------------------------------------------------------
# the trainer


def test_a_stop_requested_before_training_starts_is_honoured():
    trainer = engine.Trainer(image(), "YX", tiny(steps=30))
    trainer.request_stop()
    events = list(trainer.iter_fit())
    assert trainer.model.step == 0
    assert events[-1].stopped
    assert not trainer.stop_requested  # consumed: the next run trains
    list(trainer.iter_fit())
    assert trainer.model.step == 30


def test_bad_trainer_arguments_are_explained():
    with pytest.raises(ConfigError, match="TrainConfig"):
        engine.Trainer(image(), "YX", {"steps": 5})
    with pytest.raises(ConfigError, match="device"):
        engine.Trainer(image(), "YX", tiny(steps=2), device="tpu")
    with pytest.raises(InputError, match="load_model"):
        engine.denoise("model.gr2r.pt", image(), "YX")


# --------------------------------------------------------------------------------------------
# torch tensors, tiny and huge intensity ranges


def test_torch_cpu_tensors_are_accepted():
    data = image()
    expected = engine.denoise(tiny_model(), data, "YX")
    tensor = torch.from_numpy(data.copy()).requires_grad_(True)
    np.testing.assert_array_equal(engine.denoise(tiny_model(), tensor, "YX"), expected)
    np.testing.assert_array_equal(
        engine.denoise(tiny_model(), torch.from_numpy(data).to(torch.float64), "YX"), expected)
    engine.train(torch.from_numpy(data), "YX", tiny(steps=2))
    with pytest.raises(InputError, match=r"\.cpu\(\)"):
        engine.denoise(tiny_model(), torch.empty((48, 40), device="meta"), "YX")


def test_a_tiny_intensity_range_is_not_called_constant(gaussian2d, clean2d):
    from tests.helpers import psnr

    scale = np.float32(1e-15)
    model = engine.train(gaussian2d * scale, "YX", tiny(steps=60))
    out = engine.denoise(model, gaussian2d * scale, "YX")
    assert np.isfinite(out).all()
    assert psnr(out / scale, clean2d) > psnr(gaussian2d, clean2d) + 1


def test_uint64_near_the_top_gets_a_precision_message_not_constant():
    values = np.uint64(2**64 - 4096) + np.random.default_rng(0).integers(
        0, 1000, (48, 48)).astype(np.uint64)
    with pytest.raises(InputError, match="float32") as err:
        engine.train(values, "YX", tiny(steps=2))
    assert "constant" not in str(err.value)
    assert "image - image.min()" in str(err.value)
    shifted = values - values.min()  # what the message advises works
    engine.train(shifted, "YX", tiny(steps=2))


def test_a_really_constant_image_is_still_called_constant():
    with pytest.raises(InputError, match="constant"):
        engine.train(np.full((48, 48), 7, np.uint64), "YX", tiny(steps=2))
    with pytest.raises(InputError, match="constant"):
        engine.train(np.full((48, 48), 3e-20, np.float32), "YX", tiny(steps=2))


# --------------------------------------------------------------------------------------------
# the same kinds of hole elsewhere


def test_a_float32_range_too_wide_is_explained_not_blamed_on_the_learning_rate():
    wide = np.random.default_rng(0).uniform(-3e38, 3e38, (48, 48)).astype(np.float32)
    with pytest.raises(InputError, match="divide the image") as err:
        engine.train(wide, "YX", tiny(steps=2))
    assert "learning rate" not in str(err.value)


def test_a_read_only_output_array_is_explained(tmp_path):
    zarr.save_array(str(tmp_path / "o.zarr"), np.zeros((48, 40), np.float32))
    read_only = open_result(str(tmp_path / "o.zarr"), mode="r")
    with pytest.raises(engine.OutputError, match="mode='r\\+'"):
        engine.denoise_to_zarr(tiny_model(), image(), "YX", read_only)


def test_load_model_with_a_bad_device_blames_the_device_not_the_file(tmp_path):
    path = engine.save_model(tiny_model(), tmp_path / "m.gr2r.pt")
    with pytest.raises(ConfigError, match="device"):
        engine.load_model(path, device="tpu")
