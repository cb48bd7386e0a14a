"""TIFFs written by napari-gr2r read back with their shape, axes and pixel size."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile

from napari_gr2r.io import read_image, write_image


@pytest.mark.parametrize(("shape", "axes"), [((3, 40, 36), "ZYX"), ((2, 3, 40, 36), "CZYX"),
                                             ((40, 36, 3), "YXC"), ((4, 40, 36), "CYX")])
def test_round_trip_keeps_shape_axes_and_scale(tmp_path, shape, axes):
    data = np.random.default_rng(0).random(shape).astype(np.float32)
    scale = [0.5 + i for i in range(len(shape))]
    path = tmp_path / "out.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RGB guess from a side of 3 or 4
        write_image(path, data, axes, {"scale": scale, "unit": "µm"})
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.MINISBLACK
    back, meta = read_image(path)
    np.testing.assert_array_equal(np.asarray(back), data)
    assert meta["axes"] == axes
    assert meta["scale"] == scale
    assert meta["unit"] == "µm"
