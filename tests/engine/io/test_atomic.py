"""Atomic writes of models and images: a kill at any moment leaves a loadable file, no stray
temporaries are left behind for ever, and the files get the permissions of a plain open().
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from napari_gr2r import engine
from tests.helpers import tiny_model

ROOT = Path(__file__).resolve().parents[3]


def image() -> np.ndarray:
    return np.random.default_rng(0).uniform(100, 1100, (48, 40)).astype(np.float32)


def _dead_pid() -> int:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return dead.pid


_SAVER = textwrap.dedent("""
    import sys
    import torch
    from napari_gr2r import engine
    from napari_gr2r.engine.model.networks import build_network
    from tests.helpers import tiny_model
    model = tiny_model()
    model.net = build_network(2, 1, 32, 3)  # about 8 MB: a kill often lands inside a write
    model.config = model.config.replace(width=32, depth=3)
    n = 0
    while True:
        engine.save_model(model, sys.argv[1])
        n += 1
        print(n, flush=True)
""")


def test_sigkill_during_repeated_saves_leaves_a_loadable_file_and_no_stray_temporaries(tmp_path):
    path = tmp_path / "m.gr2r.pt"
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}", OMP_NUM_THREADS="1")
    rng = np.random.default_rng(0)
    for _ in range(4):
        saver = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], env=env, cwd=ROOT,
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert saver.stdout.readline().strip() == "1"  # at least one save finished
            time.sleep(float(rng.uniform(0, 0.3)))
        finally:
            saver.send_signal(signal.SIGKILL)
            saver.wait(30)
        assert engine.load_model(path).config.width == 32  # always a whole, loadable file
        temporaries = [p for p in tmp_path.iterdir() if p != path]
        assert len(temporaries) <= 1, temporaries  # at most the one the kill interrupted
    engine.save_model(engine.load_model(path), path)
    assert list(tmp_path.iterdir()) == [path]


def test_save_model_removes_stale_temporaries_of_its_target(tmp_path):
    pid = _dead_pid()
    stale = [tmp_path / f".m.gr2r.pt.{pid}.abc123.tmp", tmp_path / ".m.gr2r.pt.k3j2l9x_.tmp"]
    for p in stale:
        p.write_bytes(b"x" * 1000)
    os.utime(stale[1], (0, 0))  # an old temporary of an earlier version, without a pid
    live = tmp_path / f".m.gr2r.pt.{os.getppid()}.abc123.tmp"  # a running save's: kept
    live.write_bytes(b"z")
    other = tmp_path / f".other.gr2r.pt.{pid}.abc123.tmp"  # another target's: kept
    other.write_bytes(b"y")
    engine.save_model(tiny_model(), tmp_path / "m.gr2r.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.gr2r.pt", live.name,
                                                                 other.name])


def test_write_image_removes_stale_temporaries_of_its_target(tmp_path):
    from napari_gr2r.io import write_image

    stale = tmp_path / f".o.tif.{_dead_pid()}.abc123.tmp"
    stale.write_bytes(b"x")
    write_image(tmp_path / "o.tif", image(), "YX")
    assert [p.name for p in tmp_path.iterdir()] == ["o.tif"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_honour_the_umask(tmp_path, umask):
    from napari_gr2r.io import write_image

    old = os.umask(umask)
    try:
        model_path = engine.save_model(tiny_model(), tmp_path / "m.gr2r.pt")
        tif = write_image(tmp_path / "o.tif", image(), "YX")
        engine.denoise_to_zarr(tiny_model(), image(), "YX", str(tmp_path / "o.zarr"))
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert (model_path.stat().st_mode & 0o777) == expected
    assert (tif.stat().st_mode & 0o777) == expected
    for p in (tmp_path / "o.zarr").rglob("*"):
        if p.is_file():
            assert (p.stat().st_mode & 0o777) == expected, p


def test_replacing_a_file_keeps_its_permissions(tmp_path):
    from napari_gr2r.io import write_image

    path = engine.save_model(tiny_model(), tmp_path / "m.gr2r.pt")
    path.chmod(0o640)
    engine.save_model(tiny_model(seed=1), path)
    assert (path.stat().st_mode & 0o777) == 0o640
    tif = write_image(tmp_path / "o.tif", image(), "YX")
    tif.chmod(0o604)
    write_image(tif, image(), "YX")
    assert (tif.stat().st_mode & 0o777) == 0o604


def test_saving_over_a_folder_is_refused_before_writing(tmp_path):
    with pytest.raises(engine.OutputError, match="is a folder"):
        engine.save_model(tiny_model(), tmp_path)
    assert list(tmp_path.iterdir()) == []
