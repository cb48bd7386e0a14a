"""``napari-gr2r export``: a package from a model file, and one-line errors on bad input."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import tifffile

from napari_gr2r import engine
from napari_gr2r.cli import main
from tests.helpers import run_main, tiny

pytest.importorskip("bioimageio.spec")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, gaussian2d):
    path = tmp_path_factory.mktemp("export") / "nuclei.gr2r.pt"
    return engine.save_model(engine.train(gaussian2d, "YX", tiny(steps=5, width=8)), path)


def test_export_writes_a_package_that_loads_back(model_file, gaussian2d, tmp_path, capsys):
    image = tmp_path / "noisy.tif"
    tifffile.imwrite(image, gaussian2d)
    out = tmp_path / "nuclei-gr2r.zip"
    result = run_main(capsys, "export", str(model_file), "-o", str(out), "--name",
                      "Nuclei GR2R", "--author", "A. Tester", "--author", "B. Tester",
                      "--test-image", str(image))
    assert result.returncode == 0, result.stderr
    assert "bioimageio test" in result.stdout
    assert str(out) in result.stdout
    assert "Traceback" not in result.stderr
    rdf = zipfile.ZipFile(out).read("rdf.yaml").decode()
    assert "name: Nuclei GR2R" in rdf
    assert "B. Tester" in rdf
    with zipfile.ZipFile(out) as zf, zf.open("test_input.npy") as fh:
        test_input = np.load(fh)
    assert test_input.shape == (1, 1, 96, 96)  # the image's centre, at a valid size
    np.testing.assert_array_equal(test_input[0, 0], gaussian2d[:96, :96])
    loaded = engine.load_model(out)
    assert loaded.normalization == engine.load_model(model_file).normalization
    again = run_main(capsys, "export", str(model_file), "-o", str(out))
    assert again.returncode == 2
    assert "--overwrite" in again.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("missing.gr2r.pt",), "No model file"),
    (("MODEL", "--name", "a/b"), "name"),
    (("MODEL", "--cover", "cover.gif"), "PNG or JPEG"),
])
def test_bad_input_ends_in_one_line_and_exit_2(model_file, tmp_path, capsys, args, message):
    args = tuple(str(model_file) if a == "MODEL" else a for a in args)
    out = tmp_path / "out.zip"
    assert main(["export", *args, "-o", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("napari-gr2r: error:"), lines
    assert message in lines[0]
    assert not out.exists()


def test_output_must_be_a_zip(model_file, tmp_path, capsys):
    result = run_main(capsys, "export", str(model_file), "-o", str(tmp_path / "out.gr2r.pt"))
    assert result.returncode == 2
    assert result.stderr.startswith("napari-gr2r: error:")
    assert "ending in .zip" in result.stderr
