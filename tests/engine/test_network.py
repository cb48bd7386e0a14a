"""The U-Net keeps any input size and its receptive field is within the stated bound."""

from __future__ import annotations

import pytest
import torch

from napari_gr2r.engine.networks import UNet


@pytest.mark.parametrize(("dims", "shape"), [(2, (37, 50)), (2, (5, 3)), (3, (7, 19, 22))])
def test_any_size_in_same_size_out(dims, shape):
    net = UNet(dims=dims, channels=2, width=4, depth=2)
    x = torch.randn(1, 2, *shape)
    assert net(x).shape == x.shape


def test_receptive_radius_bounds_the_context():
    torch.manual_seed(0)
    net = UNet(dims=2, channels=1, width=4, depth=2).eval()
    r = net.receptive_radius
    size = 2 * r + 24
    x = torch.randn(1, 1, size, size, requires_grad=True)
    centre = size // 2
    net(x)[0, 0, centre, centre].backward()
    reach = x.grad[0, 0].abs() > 0
    rows, cols = torch.nonzero(reach, as_tuple=True)
    assert reach.any()
    assert int((rows - centre).abs().max()) <= r
    assert int((cols - centre).abs().max()) <= r
