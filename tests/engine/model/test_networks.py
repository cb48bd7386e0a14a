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


def test_an_ensemble_trains_each_member_on_its_own_samples_and_denoises_with_their_mean():
    from napari_gr2r.engine.model.networks import Ensemble, build_network

    torch.manual_seed(0)
    net = build_network(2, 1, 8, 2, members=3)
    assert isinstance(net, Ensemble)
    assert len(net.members) == 3
    x = torch.randn(6, 1, 21, 30)
    with torch.no_grad():
        routed = net.train()(x)
        # sample i goes to member i % 3 alone
        for i in range(6):
            assert torch.allclose(routed[i], net.members[i % 3](x[i:i + 1])[0], atol=1e-6)
        mean = net.eval()(x[:2])
        expected = sum(m(x[:2]) for m in net.members) / 3
        assert torch.allclose(mean, expected, atol=1e-6)
        # a training batch that does not split evenly goes to every member, like evaluation
        assert torch.allclose(net.train()(x[:2]), expected, atol=1e-6)
    assert not torch.allclose(net.members[0].head.weight, net.members[1].head.weight)
    assert net.multiple == 4
    assert net.receptive_radius == UNet(dims=2, channels=1, width=8, depth=2).receptive_radius


def test_torchscript_compiles_an_ensemble_and_agrees():
    from napari_gr2r.engine.model.networks import Ensemble

    torch.manual_seed(1)
    net = Ensemble(members=2, dims=2, channels=2, width=4, depth=2).eval()
    x = torch.randn(1, 2, 19, 26)
    scripted = torch.jit.script(net)
    with torch.no_grad():
        assert torch.allclose(scripted(x), net(x), atol=1e-5)
