"""BioImage Model Zoo packages: bioimageio.core's own test and runner accept what we export."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from napari_gr2r import engine
from napari_gr2r.engine.export.bioimageio import export_bioimageio, geometry
from tests.helpers import tiny

bioimageio_core = pytest.importorskip("bioimageio.core")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test may reach the network: every HTTP request fails as it does offline.

    Yields the list of the URLs requested.
    """
    import httpx

    requested = []

    def refuse(method, url, *args, **kwargs):
        requested.append(str(url))
        raise httpx.ConnectError("offline")

    monkeypatch.setattr(httpx, "request", refuse)
    monkeypatch.setattr(httpx, "stream", refuse)
    return requested


@pytest.fixture(scope="module")
def model2d(gaussian2d):
    return engine.train(gaussian2d, "YX", tiny(steps=10, width=8))


@pytest.fixture(scope="module")
def model3d():
    """Two channels of different brightness (CZYX), so the normalisation is per channel."""
    rng = np.random.default_rng(4)
    z, y, x = np.mgrid[:20, :40, :40]
    blob = np.exp(-((z - 10) ** 2 + (y - 18) ** 2 + (x - 22) ** 2) / 60)
    clean = np.stack([100 + 80 * blob, 1000 + 3000 * blob])
    noisy = (clean + rng.normal(0, 1, clean.shape) * [[[[10]]], [[[200]]]]).astype(np.float32)
    return engine.train(noisy, "CZYX", tiny(steps=4, width=4, depth=1, net_dims="3d",
                                            patch_size=16, patch_size_z=8))


@pytest.fixture(scope="module")
def package2d(model2d, gaussian2d, tmp_path_factory):
    path = tmp_path_factory.mktemp("zoo") / "nuclei-gr2r.zip"
    return export_bioimageio(model2d, path, name="Nuclei GR2R test", authors=["A. Tester"],
                             test_input=gaussian2d)


@pytest.fixture(scope="module")
def package3d(model3d, tmp_path_factory):
    return export_bioimageio(model3d, tmp_path_factory.mktemp("zoo3") / "vol.zip")


def _failures(summary) -> list[str]:
    return [f"{d.name}: {[e.msg[:300] for e in d.errors]}" for d in summary.details
            if d.status != "passed"]


def test_2d_package_passes_bioimageio_test_model(package2d, model2d):
    summary = bioimageio_core.test_model(package2d)
    assert summary.status == "passed", _failures(summary)
    tested = {d.name for d in summary.details}
    assert "Reproduce test outputs from test inputs (pytorch_state_dict)" in tested
    assert "Reproduce test outputs from test inputs (torchscript)" in tested
    names = set(zipfile.ZipFile(package2d).namelist())
    assert {"rdf.yaml", "README.md", "cover.png", "model.gr2r.pt", "gr2r_unet.py",
            "test_input.npy", "test_output.npy"} <= names


def test_3d_package_passes_bioimageio_test_model(package3d, model3d):
    summary = bioimageio_core.test_model(package3d)
    assert summary.status == "passed", _failures(summary)
    descr = bioimageio_core.load_description(package3d)
    assert [str(a.id) for a in descr.inputs[0].axes] == ["batch", "channel", "z", "y", "x"]
    assert descr.inputs[0].axes[1].size == 2
    gain = descr.inputs[0].preprocessing[1].kwargs.gain  # after the added ensure_dtype
    assert len(gain) == 2
    assert gain[0] > 10 * gain[1]


def test_axes_halo_and_sizes_come_from_the_network(package2d, model2d):
    descr = bioimageio_core.load_description(package2d)
    halo, step, min_size = geometry(model2d)
    assert halo >= model2d.net.receptive_radius
    assert halo % model2d.net.multiple == 0
    ipt, out = descr.inputs[0], descr.outputs[0]
    assert [str(a.id) for a in ipt.axes] == ["batch", "channel", "y", "x"]
    assert [(a.size.min, a.size.step) for a in ipt.axes[2:]] == [(min_size, step)] * 2
    assert [a.halo for a in out.axes[2:]] == [halo, halo]
    assert descr.name == "Nuclei GR2R test"
    assert descr.authors[0].name == "A. Tester"
    assert descr.weights.pytorch_state_dict is not None
    assert descr.weights.torchscript is not None
    readme = zipfile.ZipFile(package2d).read("README.md").decode()
    for text in ("GR2R", "noise sd", "10 steps", "shape (96, 96)", "openreview.net",
                 "CC-BY-4.0"):
        assert text in readme


def test_the_zoo_runner_gives_engine_denoise_intensities(package2d, model2d):
    """bioimageio.core.predict (pre/postprocessing and border padding from the rdf, whole
    image and tiled) gives denoise's intensities at every pixel, the border included."""
    rng = np.random.default_rng(5)
    _, step, min_size = geometry(model2d)
    y, x = np.mgrid[: min_size + 12 * step, : min_size + 17 * step]
    image = (60 + 90 * np.exp(-((y - 40) ** 2 + (x - 70) ** 2) / 300)
             + rng.normal(0, 25, y.shape)).astype(np.float32)[None, None]
    # the zoo runs the network once: denoise's one pass (the model's default may average flips)
    expected = engine.denoise(model2d, image, "SCYX", device="cpu", tta=1)
    for kwargs in ({}, {"blocksize_parameter": 1}):
        sample = bioimageio_core.predict(model=package2d, inputs=image, **kwargs)
        got = sample.members["denoised"].data.to_numpy()
        assert got.shape == image.shape
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=0)


def test_load_model_reads_a_package_back_losslessly(package2d, model2d, gaussian2d):
    loaded = engine.load_model(package2d)
    assert loaded.axes == model2d.axes
    assert loaded.step == model2d.step
    assert loaded.data_shape == model2d.data_shape == (96, 96)
    assert loaded.normalization == model2d.normalization
    assert loaded.config == model2d.config
    np.testing.assert_array_equal(engine.denoise(loaded, gaussian2d, device="cpu"),
                                  engine.denoise(model2d, gaussian2d, device="cpu"))


def test_a_foreign_zip_is_refused_with_advice(tmp_path):
    foreign = tmp_path / "other-model.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("rdf.yaml", "type: model\nname: someone else's model\n")
        zf.writestr("weights.pt", b"0")
    with pytest.raises(engine.CheckpointError, match="not exported by napari-gr2r"):
        engine.load_model(foreign)
    plain = tmp_path / "photos.zip"
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("a.txt", "hello")
    with pytest.raises(engine.CheckpointError, match="not a napari-gr2r model"):
        engine.load_model(plain)


def test_export_makes_no_network_request(model2d, tmp_path, offline):
    path = export_bioimageio(model2d, tmp_path / "a.zip")
    assert offline == []
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # like any file the user writes
    assert [p.name for p in tmp_path.iterdir()] == ["a.zip"]
    assert bioimageio_core.test_model(tmp_path / "a.zip").status == "passed"  # offline too


def test_bad_arguments_fail_before_anything_is_written(model2d, tmp_path):
    with pytest.raises(engine.InputError, match="needs a trained model"):
        export_bioimageio("nuclei.gr2r.pt", tmp_path / "a.zip")
    with pytest.raises(engine.InputError, match=r"ending in \.zip"):
        export_bioimageio(model2d, tmp_path / "model.gr2r.pt")
    with pytest.raises(engine.InputError, match="name"):
        export_bioimageio(model2d, tmp_path / "a.zip", name="bad/name: x")
    with pytest.raises(engine.AxesError):
        export_bioimageio(model2d, tmp_path / "a.zip", test_input=np.zeros((4, 64, 64, 3)))
    assert list(tmp_path.iterdir()) == []


def test_a_failed_export_leaves_the_earlier_package(package2d, model2d, tmp_path, monkeypatch):
    import bioimageio.spec

    path = tmp_path / "p.zip"
    path.write_bytes(package2d.read_bytes())

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(bioimageio.spec, "save_bioimageio_package", broken)
    with pytest.raises(OSError, match="disk full"):
        export_bioimageio(model2d, path)
    assert path.read_bytes() == package2d.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["p.zip"]


def test_without_bioimageio_the_engine_imports_and_export_says_what_to_install(
        model2d, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "bioimageio" or m.startswith("bioimageio.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "bioimageio", None)
    with pytest.raises(engine.GR2RError, match=r'pip install "napari-gr2r\[bioimageio\]"'):
        export_bioimageio(model2d, tmp_path / "a.zip")
    assert not (tmp_path / "a.zip").exists()


def test_importing_the_engine_does_not_import_bioimageio():
    code = ("import sys, napari_gr2r.engine, napari_gr2r.cli; "
            "print(sorted(m for m in sys.modules if m.startswith('bioimageio')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_readme_says_when_napari_gr2r_averages_flips_the_zoo_does_not():
    from napari_gr2r.engine.export.readme import _how_to_use

    assert "--tta 1" in "\n".join(_how_to_use(1, "YX", "model.gr2r.pt", 8))
    assert "--tta" not in "\n".join(_how_to_use(1, "YX", "model.gr2r.pt", 1))
