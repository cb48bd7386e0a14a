"""``napari-gr2r train`` survives a crash: checkpoints, kill -9, --resume, Ctrl-C, -o checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import tifffile
import torch

from napari_gr2r import engine
from napari_gr2r.cli import main

STEPS = 60


@pytest.fixture(scope="module")
def noisy_tif(tmp_path_factory, gaussian2d):
    path = tmp_path_factory.mktemp("ckpt") / "noisy.tif"
    tifffile.imwrite(path, gaussian2d)
    return path


def _train_args(noisy_tif, out, *extra):
    return [sys.executable, "-m", "napari_gr2r", "train", str(noisy_tif), "--axes", "YX",
            "--preset", "fast", "--steps", str(STEPS), "-o", str(out), *extra]


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def _start(args):
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())


def _wait_for(path, process, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)


def test_sigkill_after_a_checkpoint_then_resume_reaches_the_full_step_count(noisy_tif, tmp_path,
                                                                             capsys):
    out = tmp_path / "run.gr2r.pt"
    process = _start(_train_args(noisy_tif, out, "--checkpoint-every", "5"))
    try:
        _wait_for(out, process)
        time.sleep(0.2)  # let it train on past the first checkpoint: the kill lands anywhere
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    payload = torch.load(out, weights_only=True)  # whole and loadable after kill -9
    killed_at = payload["step"]
    assert 5 <= killed_at < STEPS, "the run ended before it could be killed"
    assert payload["training"]["run_steps"] == STEPS

    result = subprocess.run(_train_args(noisy_tif, out, "--resume"), capture_output=True,
                            text=True, env=_env(), timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"resuming the run in {out.name} at step {killed_at} of {STEPS}" in result.stderr
    model = engine.load_model(out)
    assert model.step == STEPS
    assert model.training_state is None
    steps = [row["step"] for row in model.history]
    assert steps == list(range(10, STEPS + 1, 10))  # no step lost, none counted twice

    assert main(_train_args(noisy_tif, out, "--resume")[3:]) == 2  # nothing left to do
    assert "pass a larger --steps" in capsys.readouterr().err


def test_ctrl_c_stops_and_saves_the_best_weights(noisy_tif, tmp_path):
    out = tmp_path / "stopped.gr2r.pt"
    process = _start(_train_args(noisy_tif, out, "--checkpoint-every", "5"))
    try:
        _wait_for(out, process)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    model = engine.load_model(out)
    assert model.step < STEPS
    assert f"stopped at step {model.step}" in stderr
    assert f"saved the best weights (step {model.best_step}) to {out}" in stderr
    assert "--resume" in stderr
    assert model.training_state is not None  # so that --resume continues it


def test_output_is_checked_before_training(noisy_tif, tmp_path, capsys):
    folder = tmp_path / "a folder"
    folder.mkdir()
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    for out, words in [(folder, "is a folder"), (not_a_folder / "m.gr2r.pt", "cannot write")]:
        assert main(_train_args(noisy_tif, out, "--overwrite")[3:]) == 2
        err = capsys.readouterr().err
        assert words in err
        assert "training" not in err  # refused before any step
        assert len(err.strip().splitlines()) == 1
    assert list(folder.iterdir()) == []
