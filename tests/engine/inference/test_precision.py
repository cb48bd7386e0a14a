"""Denoising at the model's precision (or the one asked for): bf16 autocast on the CPU close to
fp32, fp16 refused on the CPU, in memory, out of core and on the command line."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_gr2r import engine
from napari_gr2r.cli import main
from napari_gr2r.engine.errors import ConfigError
from napari_gr2r.engine.io.omezarr import open_result
from tests.helpers import psnr, tiny


@pytest.fixture(scope="module")
def model(gaussian2d):
    return engine.train(gaussian2d, "YX", tiny(steps=60, width=8), device="cpu")


@pytest.fixture(scope="module")
def fp32(model, gaussian2d):
    return engine.denoise(model, gaussian2d, "YX", device="cpu")


def test_bf16_denoises_close_to_fp32(model, gaussian2d, clean2d, fp32):
    assert model.config.precision == "auto"  # fp32 on the CPU: the default is the model's
    np.testing.assert_array_equal(
        engine.denoise(model, gaussian2d, "YX", device="cpu", precision="fp32"), fp32)
    bf16 = engine.denoise(model, gaussian2d, "YX", device="cpu", precision="bf16")
    assert bf16.dtype == np.float32
    assert np.isfinite(bf16).all()
    assert not np.array_equal(bf16, fp32)  # autocast did run
    assert psnr(fp32, clean2d) > psnr(gaussian2d, clean2d) + 1
    assert abs(psnr(bf16, clean2d) - psnr(fp32, clean2d)) < 0.3


def test_a_model_trained_at_bf16_denoises_at_bf16(model, gaussian2d, fp32, tmp_path):
    as_bf16 = engine.load_model(_saved(model, tmp_path))
    as_bf16.config = as_bf16.config.replace(precision="bf16")
    default = engine.denoise(as_bf16, gaussian2d, "YX", device="cpu")
    np.testing.assert_array_equal(
        default, engine.denoise(model, gaussian2d, "YX", device="cpu", precision="bf16"))
    np.testing.assert_array_equal(  # the override wins
        engine.denoise(as_bf16, gaussian2d, "YX", device="cpu", precision="fp32"), fp32)


def test_out_of_core_honours_the_precision(model, gaussian2d, clean2d, fp32, tmp_path):
    for chunks in (None, 32):  # tiled blocks, and small blocks batched through the network
        arr = engine.denoise_to_zarr(model, gaussian2d, "YX", str(tmp_path / f"{chunks}.zarr"),
                                     chunks=chunks, device="cpu", precision="bf16")
        result = arr[...]
        assert result.dtype == np.float32
        assert np.isfinite(result).all()
        assert not np.allclose(result, fp32, atol=1e-4)
        assert abs(psnr(result, clean2d) - psnr(fp32, clean2d)) < 0.3


def test_fp16_on_the_cpu_is_refused_before_anything_is_written(model, gaussian2d, tmp_path):
    with pytest.raises(ConfigError, match=r"precision='fp16' needs a CUDA GPU"):
        engine.denoise(model, gaussian2d, "YX", device="cpu", precision="fp16")
    with pytest.raises(ConfigError, match=r"precision='fp16' needs a CUDA GPU"):
        engine.denoise(model, gaussian2d, "YX", out=str(tmp_path / "r.zarr"), device="cpu",
                       precision="fp16")
    assert not (tmp_path / "r.zarr").exists()
    with pytest.raises(ConfigError, match="precision must be one of"):
        engine.denoise(model, gaussian2d, "YX", device="cpu", precision="fp8")
    with pytest.raises(ConfigError, match=r"precision='fp16' needs a CUDA GPU"):
        list(engine.denoise_files(model, [tmp_path], tmp_path / "out", device="cpu",
                                  precision="fp16"))
    assert not (tmp_path / "out").exists()


def test_the_cli_denoises_at_the_precision_asked_for(model, gaussian2d, tmp_path, capsys):
    noisy, model_file = tmp_path / "noisy.tif", _saved(model, tmp_path)
    tifffile.imwrite(noisy, gaussian2d)
    assert main(["denoise", str(noisy), "--model", str(model_file), "-o",
                 str(tmp_path / "bf16.tif"), "--precision", "bf16", "--device", "cpu"]) == 0
    np.testing.assert_allclose(
        tifffile.imread(tmp_path / "bf16.tif"),
        engine.denoise(model, gaussian2d, "YX", device="cpu", precision="bf16"), atol=1e-4)
    assert main(["denoise", str(noisy), "--model", str(model_file), "-o",
                 str(tmp_path / "bf16.zarr"), "--precision", "bf16", "--device", "cpu"]) == 0
    assert open_result(str(tmp_path / "bf16.zarr"), mode="r").dtype == np.float32
    capsys.readouterr()
    for out in ("fp16.tif", "fp16.zarr"):
        code = main(["denoise", str(noisy), "--model", str(model_file), "-o",
                     str(tmp_path / out), "--precision", "fp16", "--device", "cpu"])
        err = capsys.readouterr().err
        assert code == 2
        assert err.strip().splitlines()[-1].startswith(
            "napari-gr2r: error: precision='fp16' needs a CUDA GPU")
        assert "Traceback" not in err
        assert not (tmp_path / out).exists()


def _saved(model, folder):
    path = folder / "model.gr2r.pt"
    if not path.exists():
        engine.save_model(model, path)
    return path
