"""Training on several processes (torchrun, gloo on the CPU), precision and compilation."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time

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
from tests.helpers import psnr, run_main, tiny

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
    """An ensemble too: each process trains every member on its own patches."""
    tifffile.imwrite(tmp_path / "noisy.tif", crop[0])
    out = tmp_path / "model.gr2r.pt"
    result = subprocess.run(
        _torchrun("-m", "napari_gr2r", "train", str(tmp_path / "noisy.tif"), "--axes", "YX",
                  "--preset", "fast", "--steps", "20", "--members", "2", "--device", "cpu",
                  "-o", str(out)),
        capture_output=True, text=True, env=_env(), timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("training on 2 processes (gloo)") == 1
    assert result.stderr.count("an ensemble of 2 2D networks") == 1
    model = engine.load_model(out)
    assert model.history[-1]["world_size"] == 2
    assert len(model.net.members) == 2


def test_bf16_trains_on_the_cpu(crop):
    noisy, clean = crop
    # fewer steps and half the batch of the other tests: on CPUs without AVX-512 BF16 (an
    # AVX2-only machine runs CI too), bf16 arithmetic is emulated, several times slower
    model = engine.train(noisy, "YX", tiny(steps=40, batch_size=4, precision="bf16"),
                         device="cpu")
    assert model.config.precision == "bf16"
    assert psnr(engine.denoise(model, noisy, "YX", device="cpu"), clean) > \
        psnr(noisy, clean) + 3


def test_fp16_on_the_cpu_is_refused_clearly(crop, tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"fp16.*CUDA GPU.*'bf16' or 'fp32'"):
        engine.Trainer(crop[0], "YX", tiny(precision="fp16"), device="cpu")
    with pytest.raises(ConfigError, match="precision must be one of"):
        tiny(precision="fp8")
    tifffile.imwrite(tmp_path / "noisy.tif", crop[0])
    result = run_main(capsys, "train", str(tmp_path / "noisy.tif"), "--axes", "YX",
                      "--precision", "fp16", "--device", "cpu", "-o", str(tmp_path / "m.gr2r.pt"))
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


def test_torchrun_cli_refuses_a_world_larger_than_the_data_in_one_line(tmp_path, crop):
    tifffile.imwrite(tmp_path / "noisy.tif", crop[0][:64, :64])  # one 48x48 patch
    result = subprocess.run(
        _torchrun("-m", "napari_gr2r", "train", str(tmp_path / "noisy.tif"), "--axes", "YX",
                  "--preset", "fast", "--device", "cpu", "-o", str(tmp_path / "m.gr2r.pt")),
        capture_output=True, text=True, env=_env(), timeout=240)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("napari-gr2r:")]
    assert errors
    assert all(line.startswith("napari-gr2r: error: 2 processes need at least 2 distinct "
                               "training patches") for line in errors)
    assert "[rank" not in result.stderr  # no traceback from either process
    assert not (tmp_path / "m.gr2r.pt").exists()


def test_compile_falls_back_in_one_line(crop, monkeypatch):
    def no_compiler(net, *args, **kwargs):
        raise RuntimeError("no C++ compiler found\nmore detail")

    monkeypatch.setattr(torch, "compile", no_compiler)
    with pytest.warns(RuntimeWarning, match=r"torch.compile is not available here \(no C\+\+ "
                                            r"compiler found\); training without it"):
        model = engine.train(crop[0], "YX", tiny(steps=10, compile=True), device="cpu")
    assert model.step == 10


KILL_RANK_1 = textwrap.dedent("""
    # rank 1 of `napari-gr2r train` killed (SIGKILL) once rank 0 has written a checkpoint
    import os, signal, sys, threading, time
    from pathlib import Path

    out = Path(sys.argv[sys.argv.index("-o") + 1])
    if os.environ["RANK"] == "1":
        def kill():
            while not out.exists():
                time.sleep(0.02)
            (out.parent / "killed").write_text(repr(time.time()))
            os.kill(os.getpid(), signal.SIGKILL)
        threading.Thread(target=kill, daemon=True).start()
    from napari_gr2r.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_a_killed_process_ends_the_run_clearly_and_keeps_the_checkpoint(tmp_path, crop):
    tifffile.imwrite(tmp_path / "noisy.tif", crop[0])
    (tmp_path / "kill.py").write_text(KILL_RANK_1)
    out = tmp_path / "model.gr2r.pt"
    timeout_s = 30  # of the collectives: the run must end long before, from the lost connection
    result = subprocess.run(
        _torchrun(str(tmp_path / "kill.py"), "train", str(tmp_path / "noisy.tif"), "--axes",
                  "YX", "--preset", "fast", "--steps", "5000", "--checkpoint-every", "2",
                  "--device", "cpu", "-o", str(out)),
        capture_output=True, text=True, timeout=240,
        env=dict(_env(), NAPARI_GR2R_DIST_TIMEOUT=str(timeout_s)))
    ended = time.time()
    assert result.returncode != 0
    assert (tmp_path / "killed").exists(), result.stderr[-3000:]
    assert ended - float((tmp_path / "killed").read_text()) < timeout_s
    errors = [line for line in result.stderr.splitlines() if line.startswith("napari-gr2r: error")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert re.match(r"napari-gr2r: error: Another of the 2 training processes ended .*saved the "
                    rf"best weights \(step \d+\) .*to {re.escape(str(out))} at step \d+; run the "
                    r"same command with --resume to continue\.$", errors[0]), errors[0]
    assert "[rank0]" not in result.stderr  # no traceback from the process that survived
    weights = torch.load(out, weights_only=True)
    model = engine.load_model(out)
    assert model.step >= 2
    assert model.run.unfinished is not None  # resumable
    assert isinstance(weights, dict)
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_process_that_fails_alone_does_not_leave_the_others_waiting(tmp_path, crop):
    """A process whose run raised leaves without the end-of-run barrier: the other one is
    told at its next collective (not at the timeout) and keeps what it saved."""
    np.save(tmp_path / "noisy.npy", crop[0][:64, :64])
    script = SCRIPT.replace("steps=60", "steps=5000, checkpoint_every=2").replace(
        "trainer.fit()", textwrap.dedent("""\
            def fail(event):
                if trainer.world.rank == 1 and event.step >= 4:
                    raise RuntimeError("rank 1 fails on its own")
            try:
                trainer.fit(fail)
            except ProcessLostError as exc:
                (out / "lost.txt").write_text(str(exc))
                raise SystemExit(3)
            finally:
                trainer.world.leave()
            """)).replace("from napari_gr2r import engine",
                          "from napari_gr2r import engine\nfrom napari_gr2r.engine.errors "
                          "import ProcessLostError")
    (tmp_path / "ddp.py").write_text(script)
    start = time.time()
    result = subprocess.run(_torchrun(str(tmp_path / "ddp.py"), str(tmp_path)),
                            capture_output=True, text=True, timeout=240,
                            env=dict(_env(), NAPARI_GR2R_DIST_TIMEOUT="60"))
    assert result.returncode != 0
    assert time.time() - start < 60
    assert "rank 1 fails on its own" in result.stderr
    # the first process's own output says why, where it did not report a lost process
    assert (tmp_path / "lost.txt").exists(), result.stderr[-4000:]
    assert "saved the best weights" in (tmp_path / "lost.txt").read_text()
    assert engine.load_model(tmp_path / "model.gr2r.pt").run.unfinished is not None


def test_the_collectives_timeout_is_read_from_the_environment(monkeypatch):
    from napari_gr2r.engine.training.distributed import DEFAULT_TIMEOUT_S, TIMEOUT_VARIABLE, timeout

    monkeypatch.delenv(TIMEOUT_VARIABLE, raising=False)
    assert timeout().total_seconds() == DEFAULT_TIMEOUT_S
    monkeypatch.setenv(TIMEOUT_VARIABLE, "2.5")
    assert timeout().total_seconds() == 2.5
    for bad in ("0", "soon"):
        monkeypatch.setenv(TIMEOUT_VARIABLE, bad)
        with pytest.raises(ConfigError, match=r"NAPARI_GR2R_DIST_TIMEOUT.*a number above 0"):
            timeout()


def test_the_learning_rate_scales_with_the_processes():
    from napari_gr2r.engine.training.distributed import lr_scale

    assert tiny().lr_scaling == "none"
    assert [lr_scale("sqrt", n) for n in (1, 4)] == [1.0, 2.0]
    assert [lr_scale("linear", n) for n in (1, 4)] == [1.0, 4.0]
    assert lr_scale("none", 4) == 1.0
    with pytest.raises(ConfigError, match="lr_scaling must be one of none, sqrt, linear"):
        tiny(lr_scaling="cubic")
