"""The bad-input battery, third part: odd shapes and stores in training, data the model never
saw in Python. (The widget's cases, SIGTERM and warnings under napari, are in
``tests/_qt/test_bad_runs_widget.py``.) See docs/robustness.md for how the cases are counted.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_gr2r import engine
from napari_gr2r.cli import main
from napari_gr2r.engine.io.provenance import RangeWarning
from napari_gr2r.engine.training.events import TrainingFinished, TrainingProgress, TrainingStarted
from tests.helpers import psnr, tiny, tiny_model


def strip(rows: int = 16, cols: int = 4096, sd: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """A wide image with few rows (a line-scan strip): its clean version and a noisy one."""
    x, y = np.arange(cols), np.arange(rows)
    clean = 400 + 300 * np.sin(x / 40.0)[None, :] * np.cos(y / 5.0)[:, None]
    noisy = clean + np.random.default_rng(0).normal(0, sd, clean.shape)
    return clean.astype(np.float32), noisy.astype(np.float32)


def test_a_wide_strip_of_few_rows_trains_with_validation():
    clean, noisy = strip()
    events: list = []
    model = engine.train(noisy, "YX", tiny(steps=100), device="cpu", callback=events.append)
    started = next(e for e in events if isinstance(e, TrainingStarted))
    assert started.has_validation  # held-out columns: 16 rows have none to spare
    val_losses = [e.val_loss for e in events if isinstance(e, TrainingProgress) and e.validated]
    assert len(val_losses) >= 3
    assert all(np.isfinite(val_losses))
    finished = next(e for e in events if isinstance(e, TrainingFinished))
    assert finished.best_val_loss is not None
    assert finished.best_step > 0
    out = engine.denoise(model, noisy, "YX", device="cpu")
    assert out.shape == noisy.shape
    assert np.isfinite(out).all()
    assert psnr(out, clean) > psnr(noisy, clean) + 2


# --------------------------------------------------------------------------------------------
# data far outside the model's training range, denoised in memory


def test_in_memory_denoise_warns_about_data_outside_the_training_range(tmp_path, capsys):
    model = tiny_model()  # trained range 100..1100
    far = np.random.default_rng(1).integers(-128, 128, (48, 48), dtype=np.int8)
    with pytest.warns(RangeWarning, match=r"lie mostly outside the range the model was trained "
                                          r"on \(100 to 1100\)") as caught:
        out = engine.denoise(model, far, "YX", device="cpu")
    assert out.shape == far.shape
    assert caught[0].filename == __file__  # points at the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error", RangeWarning)  # data in range: no warning
        engine.denoise(model, np.full((48, 48), 600, np.uint16), "YX", device="cpu")
    # the command line says it once, naming the file
    engine.save_model(model, tmp_path / "m.gr2r.pt")
    tifffile.imwrite(tmp_path / "int8.tif", far)
    assert main(["denoise", str(tmp_path / "int8.tif"), "--model", str(tmp_path / "m.gr2r.pt"),
                 "-o", str(tmp_path / "o.tif")]) == 0
    err = capsys.readouterr().err
    assert err.count("outside the range the model was trained on") == 1, err
    assert "int8.tif's values" in err


def test_out_of_core_denoise_reports_data_outside_the_training_range_as_an_event(tmp_path,
                                                                                capsys):
    model = tiny_model()  # trained range 100..1100
    far = np.random.default_rng(1).integers(-128, 128, (48, 48), dtype=np.int8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RangeWarning)  # the generator says it in its first step
        steps = list(engine.iter_denoise_to_zarr(model, far, "YX", tmp_path / "a.zarr",
                                                 device="cpu"))
    assert "lie mostly outside the range the model was trained on" in steps[0].warning
    assert all(step.warning is None for step in steps[1:])
    assert steps[-1].done == steps[-1].total
    # the function form warns, pointing at its caller
    with pytest.warns(RangeWarning, match="outside the range") as caught:
        engine.denoise_to_zarr(model, far, "YX", tmp_path / "b.zarr", device="cpu")
    assert caught[0].filename == __file__
    # many files: the warning comes with the file it concerns, and the run's end counts it
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "far.tif", far)
    tifffile.imwrite(folder / "fine.tif", np.full((48, 48), 600, np.uint16))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RangeWarning)
        events = list(engine.denoise_files(model, folder, tmp_path / "out", device="cpu"))
    done = {Path(e.path).name: e for e in events if isinstance(e, engine.FileDone)}
    assert "far.tif's values" in done["far.tif"].warning
    assert done["fine.tif"].warning is None
    assert [Path(p).name for p in events[-1].warned] == ["far.tif"]
    # and the command line says so beside the file, then in its summary
    engine.save_model(model, tmp_path / "m.gr2r.pt")
    assert main(["denoise", str(folder / "far.tif"), str(folder / "fine.tif"), "-m",
                 str(tmp_path / "m.gr2r.pt"), "-o", str(tmp_path / "cli")]) == 0
    err = capsys.readouterr().err
    assert err.count("napari-gr2r: warning: far.tif's values") == 1, err
    assert "1 result(s) may be wrong" in err, err
    assert err.rstrip().endswith("far.tif"), err


# --------------------------------------------------------------------------------------------
# a zarr store of 1x1 chunks


def test_training_on_a_store_of_1x1_chunks_reads_each_chunk_once(tmp_path):
    from zarr.storage import LocalStore, LoggingStore

    image = np.random.default_rng(2).uniform(100, 1100, (32, 32)).astype(np.float32)
    zarr.create_array(str(tmp_path / "tiny.zarr"), data=image, chunks=(1, 1))
    store = LoggingStore(LocalStore(str(tmp_path / "tiny.zarr"), read_only=True),
                         log_level="WARNING", log_handler=logging.NullHandler())
    arr = zarr.open_array(store, mode="r")
    before = store.counter["get"]
    model = engine.train(arr, "YX", tiny(steps=2, batch_size=2), device="cpu")
    reads = store.counter["get"] - before
    # once for the whole run (statistics, patches, validation), not once per patch drawn
    assert 0 < reads <= image.size, reads
    assert model.step == 2
