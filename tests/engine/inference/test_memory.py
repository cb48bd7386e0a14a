"""Tiled inference equals untiled inference, keeps shapes, axes order and intensity scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_gr2r import engine
from napari_gr2r.engine.data.normalization import Normalization
from napari_gr2r.engine.inference.tiling import sum_weights, tile_axis
from napari_gr2r.engine.io.omezarr import open_result
from napari_gr2r.engine.model.model import GR2RModel
from napari_gr2r.engine.model.networks import UNet
from napari_gr2r.engine.noise.level import NoiseLevel


def _model(dims=2, channels=1, axes="YX", width=8, depth=2, seed=0):
    torch.manual_seed(seed)
    net = UNet(dims, channels, width, depth).eval()
    return GR2RModel(
        net=net, config=engine.TrainConfig(width=width, depth=depth, members=1, tta=1), axes=axes,
        channels=channels, dims=dims,
        normalization=Normalization([10.0] * channels, [200.0] * channels),
        noise_level=NoiseLevel([0.0] * channels, [0.01] * channels, [0.01] * channels),
    )


@pytest.mark.parametrize("length", [5, 64, 100, 257])
@pytest.mark.parametrize(("tile", "overlap"), [(48, 16), (48, 40)])
def test_tile_weights_partition_unity(length, tile, overlap):
    tiling = tile_axis(length, tile, overlap, 8)
    np.testing.assert_allclose(sum_weights(tiling, length), 1, atol=1e-6)
    assert all(s % 8 == 0 for s, _ in tiling.bounds)
    assert tiling.bounds[-1][1] == length


@pytest.mark.parametrize("shape", [(150, 203), (37, 41)])
def test_tiled_equals_untiled_2d(shape):
    model = _model()
    image = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
    whole = engine.denoise(model, image, "YX", tile=1024)
    overlap = 2 * model.net.receptive_radius + 16
    tiled = engine.denoise(model, image, "YX", tile=overlap + 32, overlap=overlap, batch_size=3)
    assert tiled.shape == image.shape
    assert tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, whole, rtol=1e-4, atol=1e-3)


def test_tiled_equals_untiled_3d():
    model = _model(dims=3, axes="ZYX", width=4, depth=1)
    image = np.random.default_rng(1).uniform(0, 255, (21, 45, 38)).astype(np.float32)
    whole = engine.denoise(model, image, "ZYX", tile=(64, 64, 64))
    overlap = 2 * model.net.receptive_radius + 16
    tiled = engine.denoise(model, image, "ZYX", tile=overlap + 4, overlap=overlap)
    np.testing.assert_allclose(tiled, whole, rtol=1e-4, atol=1e-3)


def test_axes_order_and_channels_are_kept():
    model = _model(channels=3, axes="YXC")
    rgbish = np.random.default_rng(2).uniform(0, 255, (40, 50, 3)).astype(np.float32)
    out_yxc = engine.denoise(model, rgbish, "YXC")
    out_cyx = engine.denoise(model, rgbish.transpose(2, 0, 1), "CYX")
    np.testing.assert_allclose(out_yxc, out_cyx.transpose(1, 2, 0), rtol=1e-5, atol=1e-4)


def test_stack_with_2d_model_matches_slice_by_slice():
    model = _model(axes="YX")
    stack = np.random.default_rng(3).uniform(0, 255, (2, 3, 33, 34)).astype(np.uint16)
    out = engine.denoise(model, stack, "TZYX")
    assert out.shape == stack.shape
    np.testing.assert_allclose(out[1, 2], engine.denoise(model, stack[1, 2], "YX"), atol=1e-4)


def test_intensity_scale_is_the_inputs():
    model = _model()
    flat = np.full((32, 32), 150.0, np.float32)
    out = engine.denoise(model, flat, "YX")
    # an untrained network maps everything near one value; the output lives in input units
    assert np.isfinite(out).all()
    assert abs(float(out.mean()) - 150) < 400


def test_model_mismatch_is_explained():
    model = _model(channels=2, axes="CYX")
    with pytest.raises(engine.AxesError, match="2 channel"):
        engine.denoise(model, np.zeros((32, 32), np.float32), "YX")
    model3d = _model(dims=3, axes="ZYX", width=4, depth=1)
    with pytest.raises(engine.AxesError, match="3D network"):
        engine.denoise(model3d, np.zeros((32, 32), np.float32), "YX")
    with pytest.raises(engine.AxesError, match="pass axes"):
        engine.denoise(_model(), np.zeros((3, 32, 32), np.float32))


def test_lazy_inputs(tmp_path):
    import dask.array as da
    import zarr

    model = _model()
    image = np.random.default_rng(4).uniform(0, 255, (2, 70, 90)).astype(np.uint16)
    expected = engine.denoise(model, image, "TYX")
    store = zarr.open(str(tmp_path / "in.zarr"), mode="w", shape=image.shape,
                      chunks=(1, 32, 32), dtype=image.dtype)
    store[...] = image
    np.testing.assert_allclose(engine.denoise(model, store, "TYX"), expected, atol=1e-4)
    lazy = da.from_array(image, chunks=(1, 35, 45))
    np.testing.assert_allclose(engine.denoise(model, lazy, "TYX"), expected, atol=1e-4)


def test_tta_is_the_mean_of_the_network_over_flips_and_quarter_turns():
    model = _model()
    image = np.random.default_rng(3).uniform(0, 255, (64, 64)).astype(np.float32)
    tta = engine.denoise(model, image, "YX", tile=1024, tta=True)
    views = []
    for flip in (False, True):
        x = image[:, ::-1] if flip else image
        for k in range(4):
            y = engine.denoise(model, np.ascontiguousarray(np.rot90(x, k)), "YX", tile=1024)
            y = np.rot90(y, -k)
            views.append(y[:, ::-1] if flip else y)
    np.testing.assert_allclose(tta, np.mean(views, axis=0), rtol=1e-4, atol=1e-3)
    plain = engine.denoise(model, image, "YX", tile=1024)
    assert np.abs(tta - plain).max() > 1e-2  # an untrained net is far from symmetric


def test_tta_into_a_zarr_store_equals_tta_in_memory_and_is_recorded(tmp_path):

    model = _model()
    image = np.random.default_rng(5).uniform(0, 255, (2, 70, 90)).astype(np.float32)
    expected = engine.denoise(model, image, "TYX", tta=4)
    out = engine.denoise_to_zarr(model, image, "TYX", tmp_path / "out.zarr", chunks=32, tta=4)
    np.testing.assert_allclose(out[...], expected, rtol=1e-4, atol=1e-3)  # float rounding
    assert np.abs(expected - engine.denoise(model, image, "TYX")).max() > 1e-2
    # the store records the views: a run with other views is not taken for its resumption
    with pytest.raises(engine.InputError, match="other settings \\(views\\)"):
        engine.denoise_to_zarr(model, image, "TYX", tmp_path / "out.zarr", chunks=32)
    np.testing.assert_allclose(open_result(str(tmp_path / "out.zarr"), mode="r")[...], out[...])


def test_a_model_denoises_with_its_own_tta_unless_told_otherwise():
    model = _model()
    image = np.random.default_rng(6).uniform(0, 255, (64, 64)).astype(np.float32)
    plain = engine.denoise(model, image, "YX")
    averaged = engine.denoise(model, image, "YX", tta=8)
    model.config.tta = 8
    np.testing.assert_allclose(engine.denoise(model, image, "YX"), averaged, atol=1e-5)
    np.testing.assert_allclose(engine.denoise(model, image, "YX", tta=1), plain, atol=1e-5)
    assert engine.TrainConfig.from_preset("fast").tta == 8
    assert engine.TrainConfig.from_preset("quality").tta == 1
    with pytest.raises(engine.ConfigError, match="tta must be 1, 2, 4 or 8"):
        engine.TrainConfig.from_preset("fast", tta=3)


