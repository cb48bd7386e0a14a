"""Tiles along an axis, their blending weights, and test-time augmentation's views."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_gr2r.engine.errors import ConfigError
from napari_gr2r.engine.inference.tiling import (
    dihedral_mean,
    mirror,
    sum_weights,
    tile_axis,
    tta_views,
)


@pytest.mark.parametrize(("length", "tile", "overlap", "multiple"),
                         [(100, 48, 16, 8), (1000, 384, 64, 32), (97, 32, 0, 8), (50, 64, 8, 8),
                          (257, 64, 63, 16)])
def test_tiles_cover_the_axis_and_their_weights_sum_to_one(length, tile, overlap, multiple):
    t = tile_axis(length, tile, overlap, multiple)
    assert t.bounds[0][0] == 0
    assert t.bounds[-1][1] == length
    assert all(s % multiple == 0 for s, _ in t.bounds)
    assert all(e - s <= max(tile, multiple) for s, e in t.bounds)
    assert all(b[0] < a[1] or overlap == 0 for a, b in zip(t.bounds, t.bounds[1:]))
    np.testing.assert_allclose(sum_weights(t, length), 1, atol=1e-6)
    assert all(w.min() >= 0 for w in t.weights)


def test_a_short_axis_is_one_tile():
    t = tile_axis(40, 64, 16, 8)
    assert t.bounds == ((0, 40),)


def test_mirror_pads_by_reflection():
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = mirror(image, [(1, 1), (2, 0)])
    assert out.shape == (5, 6)
    np.testing.assert_array_equal(out[1:4, 2:], image)


@pytest.mark.parametrize(("tta", "views"), [(False, 1), (True, 8), (2, 2), (4, 4), (8, 8)])
def test_tta_views(tta, views):
    assert tta_views(tta) == views


def test_bad_tta_is_explained():
    with pytest.raises(ConfigError, match="tta"):
        tta_views(3)


def test_dihedral_mean_of_an_equivariant_net_is_the_net():
    net = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        net.weight[:] = torch.tensor([[0.0, 1, 0], [1, 4, 1], [0, 1, 0]]) / 8
    x = torch.rand(2, 1, 16, 16)
    for views in (2, 4, 8):
        torch.testing.assert_close(dihedral_mean(net, x, views), net(x), atol=1e-5, rtol=1e-5)


def test_dihedral_mean_averages_a_net_that_is_not():
    net = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        net.weight[:] = 0
        net.weight[0, 0, 1, 2] = 1.0  # a shift along X
    x = torch.rand(1, 1, 8, 8)
    out = dihedral_mean(net, x, 2)  # the shift and its half turn, the opposite shift
    torch.testing.assert_close(out, (net(x) + torch.rot90(net(torch.rot90(x, 2, (-2, -1))),
                                                         -2, (-2, -1))) / 2)
