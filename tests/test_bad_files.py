"""The bad-input battery, continued: the odd files labs really have, outputs that know their
input, one writer per output, SIGTERM like Ctrl-C.

Each case is one a careful (or careless) user met: it either ends in one clear line on stderr
(exit status 2, nothing written, the input unchanged) or gives the correct result; never a
traceback, never a wrong result reported as done. The table ``FILE_CASES`` holds the cases
that one command shows; the tests after it the ones that need two runs, a signal or a race.
See docs/robustness.md for how the cases are counted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr

from napari_gr2r import engine
from napari_gr2r.cli import main
from napari_gr2r.engine import GR2RError
from napari_gr2r.engine.io.omezarr import open_result
from napari_gr2r.engine.io.outputs import OutputClaim
from tests.helpers import tiny_model

RNG = np.random.default_rng(7)


def noisy(shape=(48, 48), low=100, high=1100) -> np.ndarray:
    return RNG.uniform(low, high, shape).astype(np.float32)


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _pyramid(path: Path) -> None:
    image = noisy((128, 128))
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, subifds=1, tile=(64, 64), metadata={"axes": "YX"})
        tif.write(image[::2, ::2], subfiletype=1, tile=(64, 64))


def _multi_series(path: Path) -> None:
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(noisy((4, 48, 48)), metadata={"axes": "ZYX"})
        tif.write(noisy((4, 48, 48)), metadata={"axes": "ZYX"})


def _ome_zarr_without_level(path: Path) -> None:
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": "y"}, {"name": "x"}],
                                   "datasets": [{"path": "0"}, {"path": "1"}]}]
    group.create_array("1", data=noisy((24, 24)))


def _zattrs_list(path: Path) -> None:
    zarr.save_array(str(path), noisy(), zarr_format=2)
    (path / ".zattrs").write_text("[1, 2, 3]")


def _corrupt_chunk(path: Path) -> None:
    arr = zarr.create_array(str(path), shape=(48, 48), chunks=(24, 24), dtype="float32",
                            zarr_format=2)
    arr[...] = noisy()
    chunk = path / "0.0"
    chunk.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00garbage" * 8)  # a zstd header, then nothing


def _description(shape, **extra):
    def write(path: Path) -> None:
        info = {"axes": "ZYX" if len(shape) == 3 else "YX", "shape": list(shape), **extra}
        tifffile.imwrite(path, noisy((96, 96)) if len(shape) == 3 else noisy(),
                         description=json.dumps(info), metadata=None)
    return write


def _truncated_stack(path: Path) -> None:
    tifffile.imwrite(path, noisy((16, 48, 48)))
    _cut(path)


def _truncated_hyperstack(path: Path) -> None:
    tifffile.imwrite(path, noisy((2, 8, 48, 48)), imagej=True, metadata={"axes": "TZYX"})
    _cut(path)


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _rgb(path: Path) -> None:
    tifffile.imwrite(path, RNG.integers(100, 250, (48, 48, 3), dtype=np.uint8),
                     photometric="rgb")


def _empty_zarr_file(path: Path) -> None:
    path.write_bytes(b"")


# (case, file name, how to make it, extra arguments, expected: ("error", words) or ("done",
# a check of the result))
FILE_CASES = [
    ("truncated 16-page TIFF", "cut.tif", _truncated_stack, (), ("error", "cut short")),
    ("truncated ImageJ hyperstack", "ij.tif", _truncated_hyperstack, (),
     ("error", "cut short")),
    ("multi-series OME-TIFF", "multi.ome.tif", _multi_series, (), ("error", "holds 2 images")),
    ("description shape not the pages'", "desc.tif", _description((4, 48, 48)), (),
     ("error", "does not describe this file")),
    ("pyramid OME-TIFF", "pyr.ome.tif", _pyramid, (), ("done", (128, 128))),
    ("OME-Zarr without its first level", "nolevel.zarr", _ome_zarr_without_level, (),
     ("error", "full-resolution level")),
    (".zattrs a JSON list", "list.zarr", _zattrs_list, (), ("done", (48, 48))),
    ("corrupt zarr chunk", "bad.zarr", _corrupt_chunk, (), ("error", "damaged")),
    ("bad scale ['a', null] into .ome.tif", "scale.tif", _description((48, 48), scale=["a", None]),
     ("-o", "out.ome.tif"), ("done", (48, 48))),
    ("bad scale [NaN, -inf]", "inf.tif", _description((48, 48), scale=[float("nan"),
                                                                      float("-inf")]),
     ("-o", "out.ome.tif"), ("done", (48, 48))),
    ("RGB TIFF with a 3-channel model", "rgb.tif", _rgb, ("--model", "m3.gr2r.pt"),
     ("done", (48, 48, 3))),
    ("a 0-byte file named .zarr", "empty.zarr", _empty_zarr_file, (),
     ("error", "a zarr store is a folder")),
]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    engine.save_model(tiny_model(), folder / "m.gr2r.pt")
    engine.save_model(tiny_model(channels=3, axes="YXC"), folder / "m3.gr2r.pt")
    engine.save_model(tiny_model(seed=1), folder / "other.gr2r.pt")
    engine.save_model(tiny_model(dims=3, axes="ZYX"), folder / "m3d.gr2r.pt")
    return folder


def _tree(folder: Path) -> dict[str, str]:
    found = {}
    for p in sorted(folder.rglob("*")):
        if p.is_fifo():
            found[str(p.relative_to(folder))] = "fifo"
        elif p.is_file():
            found[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("napari-gr2r: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(("name", "file", "make", "extra", "expected"), FILE_CASES,
                         ids=[c[0] for c in FILE_CASES])
def test_odd_files_get_a_clear_error_or_the_right_result(tmp_path, models, monkeypatch, capsys,
                                                         name, file, make, extra, expected):
    monkeypatch.chdir(tmp_path)
    make(tmp_path / file)
    before = _tree(tmp_path)
    model = str(models / "m.gr2r.pt")
    args = ["denoise", file, "--model", model, "-o", "out.tif"]
    if "--model" in extra:
        args[3] = str(models / extra[extra.index("--model") + 1])
    if "-o" in extra:
        args[5] = extra[extra.index("-o") + 1]
    status = main(args)
    err = capsys.readouterr().err
    kind, what = expected
    if kind == "error":
        assert status == 2, err
        assert what in _one_error_line(err), err
        assert _tree(tmp_path) == before  # nothing written, the input as it was
        return
    assert status == 0, err
    assert "Traceback" not in err
    out = tmp_path / args[5]
    result, meta = engine.read_image(out)
    assert tuple(result.shape) == what
    assert np.isfinite(np.asarray(result)).all()
    assert meta.get("scale") is None or all(np.isfinite(meta["scale"]))
    with tifffile.TiffFile(out) as tif:
        assert "inf" not in (tif.pages[0].description or "").lower()
    assert {k: v for k, v in _tree(tmp_path).items() if k in before} == before


def test_a_real_process_prints_only_its_own_line(tmp_path, models):
    """tifffile logs what it finds wrong with a file; a user sees one line of ours."""
    for make in (_truncated_hyperstack, _description((4, 48, 48))):
        make(tmp_path / "in.tif")
        run = subprocess.run([sys.executable, "-m", "napari_gr2r", "denoise",
                              str(tmp_path / "in.tif"), "--model", str(models / "m.gr2r.pt"),
                              "-o", str(tmp_path / "o.tif")], capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 2
        _one_error_line(run.stderr)


def test_a_pyramid_denoises_its_full_resolution(tmp_path, models):
    _pyramid(tmp_path / "pyr.ome.tif")
    data, meta = engine.read_image(tmp_path / "pyr.ome.tif")
    assert data.shape == (128, 128)
    assert meta["axes"] == "YX"
    full = tifffile.imread(tmp_path / "pyr.ome.tif", level=0)
    np.testing.assert_array_equal(np.asarray(data), full)


def test_rgb_colours_are_channels_not_samples(tmp_path):
    _rgb(tmp_path / "rgb.tif")
    _data, meta = engine.read_image(tmp_path / "rgb.tif")
    assert meta["axes"] == "YXC"


@pytest.mark.parametrize("where", ["alone", "in a folder"])
def test_a_fifo_named_x_tif_is_refused_without_hanging(tmp_path, models, where):
    raw = tmp_path / "raw"
    raw.mkdir()
    tifffile.imwrite(raw / "a.tif", noisy())
    _fifo(raw / "x.tif")
    source, out = (raw / "x.tif", tmp_path / "o.tif") if where == "alone" else \
        (raw, tmp_path / "out")
    run = subprocess.run([sys.executable, "-m", "napari_gr2r", "denoise", str(source),
                          "--model", str(models / "m.gr2r.pt"), "-o", str(out)],
                         capture_output=True, text=True, timeout=120)  # a hang fails here
    assert "Traceback" not in run.stderr
    assert "x.tif is a named pipe (FIFO), not an image file" in run.stderr
    if where == "alone":
        assert run.returncode == 2
        assert not out.exists()
    else:  # the other file is done
        assert run.returncode == 1
        assert (out / "a.tif").is_file()


def test_train_refuses_a_truncated_tiff(tmp_path, capsys):
    _truncated_stack(tmp_path / "cut.tif")
    assert main(["train", str(tmp_path / "cut.tif"), "--axes", "ZYX", "--preset", "fast",
                 "--steps", "2", "-o", str(tmp_path / "m.gr2r.pt")]) == 2
    assert "cut short" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "m.gr2r.pt").exists()


def test_train_reads_a_pyramid_and_refuses_a_corrupt_chunk(tmp_path, capsys):
    _pyramid(tmp_path / "pyr.ome.tif")
    assert main(["train", str(tmp_path / "pyr.ome.tif"), "--preset", "fast", "--steps", "2",
                 "-o", str(tmp_path / "p.gr2r.pt")]) == 0
    capsys.readouterr()
    _corrupt_chunk(tmp_path / "bad.zarr")
    assert main(["train", str(tmp_path / "bad.zarr"), "--axes", "YX", "--preset", "fast",
                 "--steps", "2", "-o", str(tmp_path / "b.gr2r.pt")]) == 2
    assert "damaged" in _one_error_line(capsys.readouterr().err)


# --------------------------------------------------------------------------------------------
# outputs that know what they are the result of


def test_a_zarr_output_is_not_reused_for_another_input(tmp_path, models, capsys):
    for name in ("ca", "cb"):
        (tmp_path / name).mkdir()
        tifffile.imwrite(tmp_path / name / "x.tif", noisy())
    model = str(models / "m.gr2r.pt")
    out = str(tmp_path / "o.zarr")
    assert main(["denoise", str(tmp_path / "ca" / "x.tif"), "--model", model, "-o", out]) == 0
    first = open_result(out, mode="r")[...]
    capsys.readouterr()
    assert main(["denoise", str(tmp_path / "cb" / "x.tif"), "--model", model, "-o", out]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "another image" in line
    assert "--overwrite" in line
    assert "overwrite=True" not in line
    np.testing.assert_array_equal(open_result(out, mode="r")[...], first)
    # with --overwrite it becomes cb's result, and the same input again is simply done
    assert main(["denoise", str(tmp_path / "cb" / "x.tif"), "--model", model, "-o", out,
                 "--overwrite"]) == 0
    expected = engine.denoise(engine.load_model(model), tifffile.imread(tmp_path / "cb" / "x.tif"),
                              "YX")
    np.testing.assert_allclose(open_result(out, mode="r")[...], expected, atol=1e-4)
    assert main(["denoise", str(tmp_path / "cb" / "x.tif"), "--model", model, "-o", out]) == 0


def test_an_interrupted_store_is_resumed_only_for_its_own_input(tmp_path):
    model = tiny_model()
    a, b = noisy((96, 96)), noisy((96, 96))
    out = str(tmp_path / "o.zarr")
    calls = []

    def stop_after_one() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(InterruptedError):
        engine.denoise_to_zarr(model, a, "YX", out, chunks=32, should_stop=stop_after_one)
    with pytest.raises(GR2RError, match="another image"):
        engine.denoise_to_zarr(model, b, "YX", out, chunks=32)
    result = engine.denoise_to_zarr(model, a, "YX", out, chunks=32)  # its own input resumes
    np.testing.assert_allclose(result[...], engine.denoise_to_zarr(
        model, a, "YX", str(tmp_path / "fresh.zarr"), chunks=32)[...], atol=1e-5)


def test_a_folder_run_does_not_skip_a_zarr_result_of_another_input(tmp_path, models):
    model = engine.load_model(models / "m.gr2r.pt")
    raw = tmp_path / "raw"
    raw.mkdir()
    zarr.save_array(str(raw / "s.zarr"), noisy())
    assert list(engine.denoise_files(model, [raw], tmp_path / "out"))[-1].done == 1
    shutil.rmtree(raw / "s.zarr")
    zarr.save_array(str(raw / "s.zarr"), noisy())  # new pixels under the same name
    finished = list(engine.denoise_files(model, [raw], tmp_path / "out"))[-1]
    assert finished.skipped == 0
    assert finished.done == 0
    assert "another image" in finished.failed[0][1]


def test_a_folder_of_tiffs_knows_which_model_made_it(tmp_path, models):
    raw = tmp_path / "raw"
    raw.mkdir()
    tifffile.imwrite(raw / "a.tif", noisy())
    first = engine.load_model(models / "m.gr2r.pt")
    assert list(engine.denoise_files(first, [raw], tmp_path / "out"))[-1].done == 1
    assert list(engine.denoise_files(first, [raw], tmp_path / "out"))[-1].skipped == 1
    other = engine.load_model(models / "other.gr2r.pt")
    finished = list(engine.denoise_files(other, [raw], tmp_path / "out"))[-1]
    assert finished.skipped == 0  # not "already done": it is another model's result
    assert "another model" in finished.failed[0][1]
    finished = list(engine.denoise_files(other, [raw], tmp_path / "out", overwrite=True))[-1]
    assert finished.done == 1
    np.testing.assert_allclose(tifffile.imread(tmp_path / "out" / "a.tif"),
                               engine.denoise(other, tifffile.imread(raw / "a.tif"), "YX"),
                               atol=1e-4)


# --------------------------------------------------------------------------------------------
# one writer per output


@pytest.mark.parametrize("what", ["TIFF folder", "TIFF file", "model file"])
def test_an_output_being_written_is_refused(tmp_path, models, capsys, what):
    tifffile.imwrite(tmp_path / "in.tif", noisy())
    model = str(models / "m.gr2r.pt")
    if what == "TIFF folder":
        out = tmp_path / "results"
        args = ["denoise", str(tmp_path / "in.tif"), str(tmp_path / "in.tif"), "--model", model,
                "-o", str(out)]
    elif what == "TIFF file":
        out = tmp_path / "r.tif"
        args = ["denoise", str(tmp_path / "in.tif"), "--model", model, "-o", str(out)]
    else:
        out = tmp_path / "same.gr2r.pt"
        args = ["train", str(tmp_path / "in.tif"), "--axes", "YX", "--preset", "fast",
                "--steps", "2", "-o", str(out)]
    folder = {"folder": True} if what == "TIFF folder" else {}  # a folder's lock is inside it
    with OutputClaim(str(out), **folder):  # another run writes it now
        assert main(args) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "being written by another napari-gr2r run" in line
    assert f".{out.name}.napari-gr2r-lock" not in line  # no lock file's path
    assert not out.exists() or (out.is_dir() and not any(out.iterdir()))


def test_train_writes_a_model_only_under_a_model_name(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "in.tif", noisy())
    precious = tmp_path / "precious.tif"
    tifffile.imwrite(precious, noisy())
    before = precious.read_bytes()
    assert main(["train", str(tmp_path / "in.tif"), "--axes", "YX", "--preset", "fast",
                 "--steps", "2", "-o", str(precious), "--overwrite"]) == 2
    assert ".gr2r.pt" in _one_error_line(capsys.readouterr().err)
    assert precious.read_bytes() == before


# --------------------------------------------------------------------------------------------
# resuming training


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A run of 4 steps written to its model file, to be continued to 8 with --resume."""
    folder = tmp_path_factory.mktemp("resume")
    tifffile.imwrite(folder / "in.tif", noisy((64, 64), 68, 987))
    tifffile.imwrite(folder / "bright.tif", noisy((64, 64), 8000, 11000))
    assert main(["train", str(folder / "in.tif"), "--axes", "YX", "--preset", "fast",
                 "--steps", "4", "-o", str(folder / "run.gr2r.pt")]) == 0
    return folder


@pytest.mark.parametrize(("extra", "words"), [
    (["--input", "bright.tif"], "other images"),
    (["--method", "r2r", "--noise-sigma", "5"], "--method r2r"),
    (["--seed", "3"], "--seed 3"),
    (["--net-dims", "3d"], "--net-dims 3d"),
    (["--preset", "quality"], "--preset quality"),
])
def test_resume_refuses_another_image_and_changed_settings(stopped_run, tmp_path, capsys, extra,
                                                          words):
    image = "in.tif"
    if extra[:1] == ["--input"]:
        image, extra = extra[1], []
    run = tmp_path / "run.gr2r.pt"
    shutil.copy(stopped_run / "run.gr2r.pt", run)  # each case its own copy of the run
    before = run.read_bytes()
    assert main(["train", str(stopped_run / image), "--axes", "YX", "--steps", "8", "-o",
                 str(run), "--resume", *extra]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("napari-gr2r: error: "), err
    assert words in last, err
    assert "Traceback" not in err
    assert run.read_bytes() == before


# --------------------------------------------------------------------------------------------
# data the model never saw, messages in plain words


def test_data_far_outside_the_training_range_is_warned_about(tmp_path, models, capsys):
    tifffile.imwrite(tmp_path / "int8.tif", RNG.integers(-128, 128, (48, 48), dtype=np.int8))
    assert main(["denoise", str(tmp_path / "int8.tif"), "--model", str(models / "m.gr2r.pt"),
                 "-o", str(tmp_path / "o.tif")]) == 0
    err = capsys.readouterr().err
    assert "napari-gr2r: warning: int8.tif's values" in err
    assert "outside the range the model was trained on (100 to 1100)" in err
    # and into a zarr store, block by block
    assert main(["denoise", str(tmp_path / "int8.tif"), "--model", str(models / "m.gr2r.pt"),
                 "-o", str(tmp_path / "o.zarr")]) == 0
    assert "outside the range the model was trained on" in capsys.readouterr().err


def test_a_3d_model_on_one_plane_says_so(tmp_path, models, capsys):
    tifffile.imwrite(tmp_path / "plane.tif", noisy((1, 48, 48)), metadata={"axes": "ZYX"})
    assert main(["denoise", str(tmp_path / "plane.tif"), "--axes", "ZYX", "--model",
                 str(models / "m3d.gr2r.pt"), "-o", str(tmp_path / "o.tif")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "a single plane" in line
    assert "no Z axis" not in line


def test_assess_json_to_a_missing_folder_fails_before_assessing(tmp_path, models, capsys):
    tifffile.imwrite(tmp_path / "in.tif", noisy())
    t0 = time.perf_counter()
    assert main(["assess", str(tmp_path / "in.tif"), "--model", str(models / "m.gr2r.pt"),
                 "--json", str(tmp_path / "nowhere" / "r.json")]) == 2
    assert "does not exist" in _one_error_line(capsys.readouterr().err)
    assert "pixels assessed" not in capsys.readouterr().out
    assert time.perf_counter() - t0 < 30


def test_engine_arguments_that_are_not_images(tmp_path):
    model = tiny_model()
    with pytest.raises(GR2RError, match="not a path"):
        list(engine.denoise_files(model, [None], tmp_path / "out"))
    with pytest.raises(GR2RError, match="not a path"):
        list(engine.denoise_files(model, ["a.tif", 3], tmp_path / "out"))


def test_tiny_zarr_chunks_are_read_many_at_a_time():
    from napari_gr2r.engine.io.sources import ImageSource

    arr = zarr.create_array(zarr.storage.MemoryStore(), shape=(300, 300), chunks=(1, 1),
                            dtype="float32")
    source = ImageSource(arr, "YX")
    assert source.chunks is not None
    assert source.chunks[1] * source.chunks[2] >= 2**14


# --------------------------------------------------------------------------------------------
# SIGTERM like Ctrl-C, a full disk: in real processes


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "napari_gr2r", *args], stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env, **kwargs)


def _wait_for(proc: subprocess.Popen, path: Path, timeout: float = 120) -> None:
    t0 = time.perf_counter()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.perf_counter() - t0 < timeout
        time.sleep(0.05)


def test_sigterm_during_train_saves_a_resumable_run(tmp_path):
    tifffile.imwrite(tmp_path / "in.tif", noisy((64, 64)))
    out = tmp_path / "run.gr2r.pt"
    proc = _cli("train", str(tmp_path / "in.tif"), "--axes", "YX", "--preset", "fast",
                "--steps", "100000", "--checkpoint-every", "5", "-o", str(out))
    _wait_for(proc, out)  # the first checkpoint: training runs
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "--resume" in err
    model = engine.load_model(out)
    assert model.training_state is not None  # resumable


def test_sigterm_during_denoise_leaves_a_store_that_resumes(tmp_path, models):
    tifffile.imwrite(tmp_path / "big.tif", noisy((1024, 1024)))
    out = tmp_path / "o.zarr"
    proc = _cli("denoise", str(tmp_path / "big.tif"), "--model", str(models / "m.gr2r.pt"),
                "-o", str(out), "--tile", "64")
    _wait_for(proc, out / "0" / "c")  # the first block is written (level 0 of the OME-Zarr)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "run the same command again to resume" in err
    state = open_result(str(out), mode="r").attrs["napari_gr2r"]
    assert not state["complete"]


def test_a_full_disk_while_train_saves_is_one_clear_line(tmp_path):
    tifffile.imwrite(tmp_path / "in.tif", noisy((64, 64)))
    import resource

    def small_files() -> None:  # a disk that takes 64 KiB per file: the model does not fit
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    proc = _cli("train", str(tmp_path / "in.tif"), "--axes", "YX", "--preset", "fast",
                "--steps", "3", "-o", str(tmp_path / "m.gr2r.pt"), preexec_fn=small_files)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("napari-gr2r: error: Cannot write "), err
    assert "disk is full" in last
    assert "requested" not in last
    assert ".tmp" not in last
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("scale", [["a", None], [float("nan"), float("-inf")], [0.5]])
def test_bad_scale_given_to_the_writers_is_not_written(tmp_path, scale):
    image = noisy()
    engine.write_image(tmp_path / "o.ome.tif", image, "YX", {"scale": scale, "unit": "µm"})
    with tifffile.TiffFile(tmp_path / "o.ome.tif") as tif:
        assert "PhysicalSize" not in tif.ome_metadata
    engine.write_image(tmp_path / "o.tif", image, "YX", {"scale": scale})
    assert "scale" not in engine.read_image(tmp_path / "o.tif")[1]


def test_weights_that_cannot_be_saved_are_kept_elsewhere(tmp_path, monkeypatch):
    import tempfile

    from napari_gr2r.cli._common import save_or_keep
    from napari_gr2r.engine.errors import WriteError

    spare = tmp_path / "spare"
    spare.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spare))
    (tmp_path / "a file").write_text("x")
    model = tiny_model()
    with pytest.raises(WriteError, match=r"saved to .*rescued-m\.gr2r\.pt instead"):
        save_or_keep(model, tmp_path / "a file" / "m.gr2r.pt")
    rescued = engine.load_model(spare / "rescued-m.gr2r.pt")
    for name, tensor in model.net.state_dict().items():
        torch.testing.assert_close(rescued.net.state_dict()[name], tensor)
