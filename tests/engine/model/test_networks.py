"""The U-Net keeps any input size and its receptive field is within the stated bound."""

from __future__ import annotations

import pytest
import torch

from napari_gr2r.engine.model.networks import UNet


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


@pytest.mark.parametrize("dims", [2, 3])
def test_decoder_merge_equals_a_convolution_of_the_concatenation(dims):
    torch.manual_seed(0)
    net = UNet(dims=dims, channels=1, width=4, depth=1)
    block = net.decoders[0]
    shape = (2, 16, 10, 12) if dims == 2 else (2, 16, 6, 10, 12)
    up, skip = torch.randn(*shape[:1], 8, *shape[2:]), torch.randn(*shape[:1], 4, *shape[2:])
    reference = block(torch.cat([up, skip], dim=1))
    torch.testing.assert_close(block.merge(up, skip), reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("dims", "shape", "residual"),
                         [(2, (37, 50), False), (2, (5, 3), True), (3, (7, 19, 22), True)])
def test_torchscript_compiles_it_and_agrees_at_any_size(dims, shape, residual):
    torch.manual_seed(0)
    net = UNet(dims=dims, channels=2, width=4, depth=2, residual=residual).eval()
    scripted = torch.jit.script(net)
    for size in (shape, tuple(s + 3 for s in shape)):
        x = torch.randn(2, 2, *size)
        with torch.no_grad():
            torch.testing.assert_close(scripted(x), net(x), rtol=0, atol=0)
