"""Neighbouring planes as context: reading, shapes, inference paths, the model file, the gain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_gr2r import engine
from napari_gr2r.engine import GR2RModel, TrainConfig, denoise, load_model, save_model, train
from napari_gr2r.engine.data.context import ContextSource, context_axis, reflect_index
from napari_gr2r.engine.data.normalization import Normalization
from napari_gr2r.engine.errors import ConfigError, InputError
from napari_gr2r.engine.inference.tiling import border_px
from napari_gr2r.engine.io.sources import ImageSource
from napari_gr2r.engine.model.networks import build_network
from napari_gr2r.engine.noise.level import NoiseLevel
from napari_gr2r.sample_data import load_sample
from tests.helpers import psnr


def context_model(context: int, axes: str, channels: int = 1, seed: int = 0) -> GR2RModel:
    """An untrained width-4 network that sees ``context`` planes on each side."""
    torch.manual_seed(seed)
    return GR2RModel(
        net=build_network(2, channels, 4, 2, context=context).eval(),
        config=TrainConfig(width=4, depth=2, context=context, members=1, tta=1),
        axes=axes, channels=channels, dims=2,
        normalization=Normalization([100.0] * channels, [1100.0] * channels),
        noise_level=NoiseLevel([0.0] * channels, [1e-3] * channels, [1e-3] * channels),
    )


def image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).poisson(300, shape) + 100).astype(np.float32)


def by_hand(model: GR2RModel, planes: list[np.ndarray]) -> np.ndarray:
    """The network on one stack of ``(C, Y, X)`` planes, untiled, the border mirrored as
    inference mirrors it."""
    norm, b = model.normalization, border_px(model)
    x = np.concatenate([norm.apply(p) for p in planes])
    x = np.pad(x, ((0, 0), (b, b), (b, b)), mode="symmetric")[None]
    with torch.no_grad():
        out = model.net(torch.from_numpy(x)).numpy()[0]
    return norm.invert(out[:, b:-b, b:-b])


def test_reflection_never_repeats_the_border_plane():
    assert [reflect_index(i, 4) for i in range(-3, 7)] == [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]
    assert [reflect_index(i, 1) for i in (-2, 0, 3)] == [0, 0, 0]
    assert list(reflect_index(np.arange(-2, 3), 2)) == [0, 1, 0, 1, 0]


@pytest.mark.parametrize(("axes", "shape", "dims", "axis"), [
    ("TYX", (5, 8, 8), 2, "T"), ("ZYX", (5, 8, 8), 2, "Z"), ("TCYX", (5, 2, 8, 8), 2, "T"),
    ("TZYX", (3, 4, 8, 8), 2, "T"), ("YX", (8, 8), 2, None), ("ZYX", (5, 8, 8), 3, None),
])
def test_context_axis(axes, shape, dims, axis):
    assert context_axis(ImageSource(np.zeros(shape, np.float32), axes).info, dims) == axis


@pytest.mark.parametrize(("axes", "shape"), [("TYX", (5, 8, 9)), ("ZYX", (5, 8, 9)),
                                             ("TCYX", (5, 2, 8, 9))])
def test_source_stacks_the_reflected_neighbours(axes, shape):
    data = image(shape)
    source = ContextSource(ImageSource(data, axes), 2, "T" if "T" in axes else "Z")
    c = 2 if "C" in axes else 1
    for plane in range(5):
        if "Z" in axes:
            block = source.read(0, slice(plane, plane + 1))[:, 0]
        else:
            block = source.read(plane)[:, 0]
        assert block.shape == (5 * c, 8, 9)
        for slot, d in enumerate(range(-2, 3)):
            want = data[reflect_index(plane + d, 5)]
            want = want if "C" in axes else want[None]
            np.testing.assert_array_equal(block[slot * c:(slot + 1) * c], want)
    # a block of several Z planes reads its neighbours beyond the block (the halo)
    if axes == "ZYX":
        block = source.read(0, slice(1, 3), slice(2, 5))
        np.testing.assert_array_equal(block[0, 1], data[0, 2:5])  # plane 2's -2 is plane 0


@pytest.mark.parametrize(("axes", "shape", "context"), [
    ("TYX", (4, 40, 36), 1), ("ZYX", (4, 40, 36), 2), ("TCYX", (3, 2, 40, 36), 1),
    ("TYX", (2, 40, 36), 3), ("YX", (40, 36), 2), ("TZYX", (3, 2, 40, 36), 1),
])
def test_denoise_shapes_and_the_network_on_each_planes_stack(axes, shape, context, tmp_path):
    c = 2 if "C" in axes else 1
    model = context_model(context, axes, channels=c)
    data = image(shape)
    out = denoise(model, data, axes)
    assert out.shape == data.shape
    assert out.dtype == np.float32
    planes = data.reshape(-1, *shape[-2:]) if c == 1 else data
    if axes in ("TYX", "ZYX", "TCYX"):
        n = shape[0]
        for i in (0, n - 1):
            stack = [planes[reflect_index(i + d, n)] for d in range(-context, context + 1)]
            stack = [p if c > 1 else p[None] for p in stack]
            want = by_hand(model, stack)
            got = out[i] if c > 1 else out[i][None]
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-3)
    # out of core: the same result, each block reading its planes' neighbours
    zarr_out = denoise(model, data, axes, out=str(tmp_path / "out.zarr"))
    np.testing.assert_allclose(np.asarray(zarr_out), out, rtol=0, atol=1e-3)


def test_training_shapes_and_the_model_file(tmp_path):
    cfg = TrainConfig.from_preset("fast", width=4, steps=3, patch_size=16, batch_size=2,
                                  context=2, val_every=2)
    cases = [("TYX", (6, 32, 32)), ("ZYX", (3, 32, 32)), ("TCYX", (5, 2, 32, 32)),
             ("YX", (32, 32))]
    for axes, shape in cases:
        model = train(image(shape), axes=axes, config=cfg)
        c = 2 if "C" in axes else 1
        assert model.dims == 2
        assert model.net.in_channels == 5 * c
        assert model.channels == c
        assert denoise(model, image(shape, 1), axes).shape == shape
    path = save_model(model, tmp_path / "m.gr2r.pt")
    loaded = load_model(path)
    assert loaded.config.context == 2
    assert loaded.net.in_channels == 5
    np.testing.assert_allclose(denoise(loaded, image((32, 32), 1), "YX"),
                               denoise(model, image((32, 32), 1), "YX"), atol=1e-4)
    # files written before context load as context 0 (the setting is simply absent)
    flat = {k: v for k, v in TrainConfig(width=4).flat().items() if k != "context"}
    assert TrainConfig.from_dict(flat).context == 0
    with pytest.raises(ConfigError, match="2D network"):
        TrainConfig(context=1, net_dims="3d")
    with pytest.raises(ConfigError, match="context"):
        TrainConfig(context=-1)
    with pytest.raises(ConfigError, match="context"):
        train(image((6, 32, 32)), axes="TYX", model=loaded, config=cfg.replace(context=1))


def test_assess_perturbs_the_centre_plane_and_keeps_the_denoised_image():
    model = context_model(1, "TYX")
    data = image((3, 40, 40))
    report = engine.assess(model, data, keep_denoised=True, probes=2)
    assert np.isfinite(report.mse)
    np.testing.assert_allclose(report.denoised, denoise(model, data), rtol=0, atol=1e-3)
    # with flips, each probe through one view: the kept result is still denoise's
    flips = engine.assess(model, data, keep_denoised=True, probes=2, tta=4)
    assert np.isfinite(flips.mse)
    np.testing.assert_allclose(flips.denoised, denoise(model, data, tta=4), rtol=0, atol=1e-3)


def test_the_package_export_refuses_context_in_one_line(tmp_path):
    with pytest.raises(InputError, match="context") as info:
        engine.export_bioimageio(context_model(1, "TYX"), tmp_path / "m.zip")
    assert "\n" not in str(info.value)


def test_context_beats_single_planes_on_a_time_lapse():
    """Known clean frames of a slowly drifting field, independent noise in each: the frames
    around each one carry its structures again, with noise of their own."""
    _, clean, _ = load_sample("nuclei2d")
    clean = clean.astype(np.float32)
    clean = (clean - clean.min()) / (clean.max() - clean.min()) * 200
    frames = np.stack([clean[60 + t:108 + t, 80:128] for t in range(8)])
    noisy = (frames + np.random.default_rng(1).normal(0, 30, frames.shape)).astype(np.float32)
    scores = {}
    for context in (0, 2):
        cfg = TrainConfig.from_preset("fast", width=8, patch_size=32, steps=150, seed=0,
                                      context=context, val_every=25)
        scores[context] = psnr(denoise(train(noisy, axes="TYX", config=cfg), noisy), frames)
    assert scores[0] > psnr(noisy, frames) + 8
    assert scores[2] > scores[0] + 0.5, scores


def test_cli_trains_with_context(tmp_path, capsys):
    import tifffile

    from napari_gr2r.cli import main

    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, image((4, 32, 32)).astype(np.uint16), photometric="minisblack")
    out = tmp_path / "m.gr2r.pt"
    code = main(["train", str(path), "--axes", "TYX", "--preset", "fast", "--steps", "2",
                 "--context", "1", "-o", str(out)])
    assert code in (0, None), capsys.readouterr().err
    assert load_model(out).config.context == 1
    code = main(["train", str(path), "--axes", "TYX", "--steps", "2", "--context", "99",
                 "-o", str(tmp_path / "n.gr2r.pt")])
    err = capsys.readouterr().err
    assert code not in (0, None)
    assert "context" in err
    assert "Traceback" not in err
