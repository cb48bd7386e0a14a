"""Hot and dead pixels: found, replaced wherever the image is read, and reported."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage

from napari_gr2r import engine
from napari_gr2r.engine.io.hotpixels import HotPixelRule, HotPixelWarning, find_in_plane
from napari_gr2r.engine.io.sources import ImageSource

GAIN, READ, OFFSET = 2.0, 3.0, 100.0
RULE = HotPixelRule((GAIN,), (READ**2,), (OFFSET,))


def _camera(clean: np.ndarray, seed: int) -> np.ndarray:
    """``clean`` (grey levels above the offset) seen by a camera of gain ``GAIN``."""
    rng = np.random.default_rng(seed)
    return OFFSET + GAIN * rng.poisson(clean / GAIN) + rng.normal(0, READ, clean.shape)


def _spots(shape: tuple[int, int], sigma: float, n: int, peak: float, seed: int) -> np.ndarray:
    """``n`` Gaussian spots of SD ``sigma`` px (pixel-integrated) at random sub-pixel places."""
    rng = np.random.default_rng(seed)
    fine = np.zeros((shape[0] * 8, shape[1] * 8))
    for y, x in rng.uniform(16, np.array(shape) * 8 - 16, (n, 2)):
        fine[int(y), int(x)] = 1.0
    fine = ndimage.gaussian_filter(fine, sigma * 8)
    image = fine.reshape(shape[0], 8, shape[1], 8).sum(axis=(1, 3))
    return image / image.max() * peak


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(clean, noisy with hot and dead pixels, where they are)``: spots of a few pixels as
    a camera captures them, ten hot pixels anywhere and two dead ones in bright spots."""
    clean = 20 + _spots((160, 160), 2.5, 30, 1500, seed)
    noisy = _camera(clean, seed)
    rng = np.random.default_rng(seed + 1)
    where = np.zeros(clean.shape, bool)
    ys, xs = rng.integers(4, clean.shape[0] - 4, 10), rng.integers(4, clean.shape[1] - 4, 10)
    noisy[ys, xs] = 60000  # hot (saturated)
    peaks = np.argwhere((clean == ndimage.maximum_filter(clean, 9)) & (clean > 1000))[:2]
    noisy[peaks[:, 0], peaks[:, 1]] = 0  # dead
    where[ys, xs] = True
    where[peaks[:, 0], peaks[:, 1]] = True
    return clean + OFFSET, noisy.astype(np.float32), where


def test_hot_and_dead_pixels_are_found_and_nothing_else():
    _, noisy, where = _scene()
    found = find_in_plane(noisy, RULE)
    assert np.array_equal(found, where)


def test_noise_alone_and_real_spots_are_never_taken_for_one():
    rng = np.random.default_rng(0)
    dim = OFFSET + GAIN * rng.poisson(0.2, (1024, 1024)) + rng.normal(0, 0.5, (1024, 1024))
    assert not find_in_plane(dim, HotPixelRule((GAIN,), (0.25,), (OFFSET,))).any()
    white = rng.normal(0, 10, (1024, 1024))
    assert not find_in_plane(white, HotPixelRule((0.0,), (100.0,), (0.0,))).any()
    # spots as narrow as a sampled point-spread function gets (half width one pixel), bright
    for seed in range(3):
        spots = _camera(_spots((256, 256), 1 / 2.355, 40, 20000, seed), seed)
        assert not find_in_plane(spots, RULE).any()


def test_a_block_is_repaired_as_the_whole_image_is():
    _, noisy, where = _scene()
    source = ImageSource(noisy, "YX")
    source.hot_pixels = RULE
    whole = source.read(0)
    assert len(source.hot_pixels_found) == where.sum()
    ys, xs = np.nonzero(where)
    y, x = int(ys[0]), int(xs[0])
    for y0, x0 in ((y - 1, x - 3), (y - 20, x), (y, x - 20)):  # the pixel near a block's edge
        y0, x0 = max(y0, 0), max(x0, 0)
        block = source.read(0, slice(None), slice(y0, y0 + 24), slice(x0, x0 + 24))
        assert np.array_equal(block, whole[:, :, y0:y0 + 24, x0:x0 + 24])
    neighbours = np.delete(noisy[y - 1:y + 2, x - 1:x + 2].ravel(), 4)
    assert whole[0, 0, y, x] == pytest.approx(float(np.median(neighbours)))


@pytest.mark.parametrize("hot_pixels", [True, False])
def test_denoising_replaces_them_instead_of_spreading_them(hot_pixels):
    clean, noisy, where = _scene()
    config = engine.TrainConfig.from_preset("fast", steps=60, seed=0, tta=1,
                                            hot_pixels=hot_pixels)
    model = engine.train(noisy, "YX", config, device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = engine.denoise(model, noisy, "YX", device="cpu")
    said = [str(w.message) for w in caught if w.category is HotPixelWarning]
    around = ndimage.binary_dilation(where, iterations=4) & ~where

    def psnr(image, mask):
        return 10 * np.log10(np.ptp(clean) ** 2 / np.mean((image - clean)[mask] ** 2))

    if hot_pixels:
        assert said == [f"{where.sum()} isolated pixels far above or below all their "
                        "neighbours (hot or dead camera pixels, cosmic rays) were replaced by "
                        "the median of their neighbours before denoising; train with "
                        "hot_pixels=False (--keep-hot-pixels) to keep such pixels."]
        assert psnr(out, around) > psnr(noisy, around) + 3  # denoised around them too
        assert psnr(out, where) > psnr(out, ~where) - 6  # and where they were
    else:
        assert said == []
        assert psnr(out, around) < psnr(noisy, around)  # spread into spots around them
