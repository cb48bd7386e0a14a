"""Axes strings and bad input get clear errors; good input is read in the canonical layout."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gr2r.engine import AxesError, InputError, guess_axes, parse_axes
from napari_gr2r.engine.io.sources import ImageSource


@pytest.mark.parametrize(
    ("axes", "shape"),
    [("YX", (5, 6)), ("ZYX", (3, 5, 6)), ("TYX", (2, 5, 6)), ("SYX", (2, 5, 6)),
     ("CYX", (2, 5, 6)), ("YXC", (5, 6, 3)), ("TZYX", (2, 3, 5, 6)), ("CZYX", (2, 3, 5, 6)),
     ("TCZYX", (2, 2, 3, 5, 6)), ("zyx", (3, 5, 6))],
)
def test_supported_axes(axes, shape):
    info = parse_axes(axes, shape)
    assert info.axes == axes.upper()
    assert info.size("Y") == 5
    assert info.size("X") == 6


@pytest.mark.parametrize(
    ("axes", "shape", "words"),
    [("ZYX", (5, 6), "3 letters but the image has 2"),
     ("YQ", (5, 6), "Unknown axis letter"),
     ("YYX", (2, 5, 6), "more than once"),
     ("ZX", (5, 6), "both Y and X"),
     ("", (5, 6), "one letter per dimension"),
     ("CYX", (40, 5, 6), "label it Z or T")],
)
def test_wrong_axes_are_explained(axes, shape, words):
    with pytest.raises(AxesError, match=words):
        parse_axes(axes, shape)


@pytest.mark.parametrize(
    ("array", "words"),
    [(np.zeros((0, 8)), "empty"),
     (np.zeros((1, 8)), "only 1 pixel"),
     (np.zeros((8, 8), bool), "boolean"),
     (np.zeros((8, 8), complex), "complex"),
     (np.array([["a"] * 8] * 8), "Unsupported pixel type")],
)
def test_bad_arrays_are_explained(array, words):
    with pytest.raises(InputError, match=words):
        ImageSource(array, "YX")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_pixels_are_explained(bad):
    image = np.ones((8, 8), np.float32)
    image[3, 4] = bad
    with pytest.raises(InputError, match="1 NaN or infinite"):
        ImageSource(image, "YX")


def test_canonical_layout_and_guesses():
    data = np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape(4, 5, 3, 2)  # Y X C T
    source = ImageSource(data, "YXCT")
    assert source.n_samples == 2
    assert source.czyx == (3, 1, 4, 5)
    block = source.read(1)
    assert block.dtype == np.float32
    np.testing.assert_array_equal(block[2, 0], data[:, :, 2, 1])
    assert guess_axes((10, 10)) == "YX"
    assert guess_axes((3, 10, 10)) == "ZYX"
    assert guess_axes((10, 10, 3), rgb=True) == "YXC"


def test_a_small_memory_mapped_image_is_fitted_on_all_its_pixels(tmp_path):
    """A file the command line opens memory-mapped gets the statistics of the same array in
    memory: random blocks of a small image miss the few bright spots near its edges."""
    from napari_gr2r.engine.data.normalization import Normalization

    image = np.random.default_rng(0).poisson(5, (512, 512)).astype(np.uint16)
    for y, x in ((3, 3), (3, 500), (508, 8), (500, 505), (256, 2)):
        image[y - 2:y + 3, x - 2:x + 3] = 30000
    np.save(tmp_path / "spots.npy", image)
    mapped = np.load(tmp_path / "spots.npy", mmap_mode="r")
    rng = np.random.default_rng(0)
    fitted = Normalization.fit(ImageSource(mapped, "YX").statistics_blocks(rng))
    assert fitted.high == Normalization.fit([image[None, None].astype(np.float32)]).high
