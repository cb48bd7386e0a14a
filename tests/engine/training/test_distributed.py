"""Training on several processes (torchrun, gloo on the CPU), precision and compilation."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tifffile
import torch

from napari_gr2r import engine
from napari_gr2r.engine.data.collection import SourceSet
from napari_gr2r.engine.data.patches import SamplingPlan
from napari_gr2r.engine.errors import ConfigError
from napari_gr2r.engine.training.distributed import check_world_fits
from napari_gr2r.engine.training.setup import training_patches
from tests.helpers import psnr, tiny

SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path

    import numpy as np
    import torch

    from napari_gr2r import engine

    out = Path(sys.argv[1])
    config = engine.TrainConfig.from_preset("fast", width=8, depth=2, patch_size=32,
                                            batch_size=4, steps=60, event_every=10,
                                            val_every=20, seed=0)
    trainer = engine.Trainer(np.load(out / "noisy.npy"), "YX", config, device="cpu",
                             checkpoint_path=out / "model.gr2r.pt")
    assert (trainer.world.size, trainer.world.backend) == (2, "gloo"), trainer.world
    trainer.fit()
    torch.save(trainer.model.net.state_dict(), out / f"rank{trainer.world.rank}.pt")
    trainer.world.leave()
""")


def _env():
    src = os.path.dirname(os.path.dirname(engine.__file__))
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                PYTHONPATH=os.pathsep.join([os.path.dirname(src), src,
                                            os.environ.get("PYTHONPATH", "")]))


def _torchrun(*args, nproc=2):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", str(nproc), *args]


@pytest.fixture(scope="module")
def crop(clean2d, gaussian2d):
    return gaussian2d[:96, :96].copy(), clean2d[:96, :96]


def test_two_processes_train_one_model_that_denoises(tmp_path, crop):
    noisy, clean = crop
    np.save(tmp_path / "noisy.npy", noisy)
    (tmp_path / "ddp.py").write_text(SCRIPT)
    result = subprocess.run(_torchrun(str(tmp_path / "ddp.py"), str(tmp_path)),
                            capture_output=True, text=True, env=_env(), timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])
    model = engine.load_model(tmp_path / "model.gr2r.pt")  # written by rank 0
    assert all(torch.equal(v, ranks[0][k]) for k, v in model.net.state_dict().items())
    assert model.step == 60
    assert model.history[-1]["world_size"] == 2
    denoised = engine.denoise(model, noisy, "YX", device="cpu")
    assert psnr(denoised, clean) > psnr(noisy, clean) + 1.5


def test_torchrun_cli_says_how_it_trains(tmp_path, crop):
    tifffile.imwrite(tmp_path / "noisy.tif", crop[0])
    out = tmp_path / "model.gr2r.pt"
    result = subprocess.run(
        _torchrun("-m", "napari_gr2r", "train", str(tmp_path / "noisy.tif"), "--axes", "YX",
                  "--preset", "fast", "--steps", "20", "--device", "cpu", "-o", str(out)),
        capture_output=True, text=True, env=_env(), timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("training on 2 processes (gloo)") == 1
    assert engine.load_model(out).history[-1]["world_size"] == 2


def test_bf16_trains_on_the_cpu(crop):
    noisy, clean = crop
    model = engine.train(noisy, "YX", tiny(steps=60, precision="bf16"), device="cpu")
    assert model.config.precision == "bf16"
    assert psnr(engine.denoise(model, noisy, "YX", device="cpu"), clean) > \
        psnr(noisy, clean) + 3


def test_fp16_on_the_cpu_is_refused_clearly(crop, tmp_path):
    with pytest.raises(ConfigError, match=r"fp16.*CUDA GPU.*'bf16' or 'fp32'"):
        engine.Trainer(crop[0], "YX", tiny(precision="fp16"), device="cpu")
    with pytest.raises(ConfigError, match="precision must be one of"):
        tiny(precision="fp8")
    tifffile.imwrite(tmp_path / "noisy.tif", crop[0])
    result = subprocess.run(
        [sys.executable, "-m", "napari_gr2r", "train", str(tmp_path / "noisy.tif"), "--axes",
         "YX", "--precision", "fp16", "--device", "cpu", "-o", str(tmp_path / "m.gr2r.pt")],
        capture_output=True, text=True, env=_env(), timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("napari-gr2r: error: precision='fp16'")
    assert "Traceback" not in result.stderr


def test_distributed_without_torchrun_is_refused(crop, monkeypatch):
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="torchrun"):
        engine.Trainer(crop[0], "YX", tiny(), device="cpu", distributed=True)


def test_a_world_larger_than_the_data_is_refused():
    images = SourceSet([np.zeros((40, 40), np.float32)], "YX")
    plan = SamplingPlan((1, 32, 32), flat_z=True, val_fraction=0.0)
    assert training_patches(images, plan) == 1
    check_world_fits(1, 1, plan.patch)
    with pytest.raises(ConfigError, match=r"2 processes need at least 2 distinct training "
                                          r"patches.*fewer processes"):
        check_world_fits(training_patches(images, plan), 2, plan.patch)


def test_compile_falls_back_in_one_line(crop, monkeypatch):
    def no_compiler(net, *args, **kwargs):
        raise RuntimeError("no C++ compiler found\nmore detail")

    monkeypatch.setattr(torch, "compile", no_compiler)
    with pytest.warns(RuntimeWarning, match=r"torch.compile is not available here \(no C\+\+ "
                                            r"compiler found\); training without it"):
        model = engine.train(crop[0], "YX", tiny(steps=10, compile=True), device="cpu")
    assert model.step == 10
