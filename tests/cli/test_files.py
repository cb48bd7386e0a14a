"""The command line on many files: a folder in, a folder out, a broken file reported by name."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tifffile

from napari_gr2r import engine
from napari_gr2r.cli import main
from tests.helpers import run_main, tiny

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.gr2r.pt"
    noisy = RNG.normal(100, 20, (48, 48)).astype(np.float32)
    engine.save_model(engine.train(noisy, "YX", tiny(steps=2, width=8), device="cpu"), path)
    return path


@pytest.fixture
def folder(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(4):
        tifffile.imwrite(raw / f"cell{i}.tif", RNG.normal(100, 20, (40, 56)).astype(np.float32))
    (raw / "broken.tif").write_bytes(b"this is not a TIFF")
    return raw


def test_folder_with_a_broken_file(model_file, folder, tmp_path, capsys):
    out = tmp_path / "results"
    result = run_main(capsys, "denoise", str(folder), "--model", str(model_file), "-o", str(out))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"cell{i}.tif" for i in range(4)]
    errors = [line for line in result.stderr.splitlines() if line.startswith("napari-gr2r: error")]
    assert len(errors) == 1
    assert "broken.tif is not a TIFF file" in errors[0]
    assert "1 file(s) failed: broken.tif" in result.stderr
    assert "denoised 4 of 5 file(s)" in result.stdout
    model = engine.load_model(model_file)
    noisy = tifffile.imread(folder / "cell2.tif")
    np.testing.assert_allclose(tifffile.imread(out / "cell2.tif"),
                               engine.denoise(model, noisy, "YX", device="cpu"), atol=1e-4)

    # a re-run skips the files already done (and reports the broken one again)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    result = run_main(capsys, "denoise", str(folder), "--model", str(model_file), "-o", str(out))
    assert result.returncode == 1
    assert result.stderr.count("already done") == 4
    assert "denoised 0 of 5 file(s)" in result.stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_several_files_globs_overwrite_and_formats(model_file, folder, tmp_path, capsys):
    out = tmp_path / "out"
    files = [str(folder / "cell0.tif"), str(folder / "cell1.tif")]
    assert main(["denoise", *files, "--model", str(model_file), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["cell0.tif", "cell1.tif"]
    assert main(["denoise", str(folder / "cell*.tif"), "--model", str(model_file), "-o", str(out),
                 "--format", "zarr", "--suffix", "_dn"]) == 0
    assert sorted(p.name for p in out.iterdir())[:2] == ["cell0.tif", "cell0_dn.zarr"]
    capsys.readouterr()
    assert main(["denoise", *files, "--model", str(model_file), "-o", str(out),
                 "--overwrite"]) == 0
    assert "denoised 2 of 2" in capsys.readouterr().out


def test_output_folder_and_extensions_are_checked(model_file, folder, tmp_path, capsys):
    args = ["denoise", str(folder / "cell0.tif"), "--model", str(model_file)]
    assert main([*args, "-o", str(tmp_path / "x.png")]) == 2
    assert "Cannot write x.png" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
    (tmp_path / "file.txt").write_text("")
    assert main(["denoise", str(folder / "cell0.tif"), str(folder / "cell1.tif"), "--model",
                 str(model_file), "-o", str(tmp_path / "file.txt")]) == 2
    assert "-o is a folder" in capsys.readouterr().err
    assert main(["denoise", str(tmp_path / "none*.tif"), "--model", str(model_file), "-o",
                 str(tmp_path / "o")]) == 2
    assert "No image files match" in capsys.readouterr().err


def test_train_on_a_folder_of_files(folder, tmp_path, capsys):
    (folder / "broken.tif").unlink()
    out = tmp_path / "many.gr2r.pt"
    assert main(["train", str(folder), "--axes", "YX", "--preset", "fast", "--steps", "3",
                 "-o", str(out)]) == 0
    assert "training on 4 images" in capsys.readouterr().err
    assert engine.load_model(out).step == 3
    tifffile.imwrite(folder / "stack.tif", RNG.random((3, 40, 56)).astype(np.float32),
                     metadata={"axes": "ZYX"}, photometric="minisblack")
    assert main(["train", str(folder / "cell0.tif"), str(folder / "stack.tif"), "--steps", "3",
                 "-o", str(tmp_path / "x.gr2r.pt")]) == 2
    assert "stack.tif has axes ZYX" in capsys.readouterr().err


def test_a_folder_run_names_the_files_whose_hot_pixels_were_replaced(model_file, tmp_path,
                                                                     capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, hot in (("plain", 0), ("hot", 2)):
        image = RNG.normal(100, 20, (40, 56)).astype(np.float32)
        image[[10, 25][:hot], [12, 40][:hot]] = 1e5
        tifffile.imwrite(raw / f"{name}.tif", image)
    result = run_main(capsys, "denoise", str(raw), "-m", str(model_file), "-o",
                      str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    # tqdm moves the cursor down and up around a line written beside its second bar (a
    # terminal shows the line as written): the codes are not part of the message
    err = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", result.stderr)
    lines = [line for line in err.splitlines() if "isolated pixels" in line]
    assert len(lines) == 1
    assert lines[0].startswith("napari-gr2r: warning: hot.tif: 2 isolated pixels far above")
    assert tifffile.imread(tmp_path / "out" / "hot.tif").max() < 1000
