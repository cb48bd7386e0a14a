"""The U-Net of the Noise2Noise / Neighbor2Neighbor family, in 2D and 3D.

Two 3x3 convolutions with LeakyReLU per level, max-pooling down, nearest up-sampling and
concatenation up, a 1x1 output convolution, no normalisation layers (so batches of any size
give the same result per image, which tiled inference relies on). Inputs of any size are
padded inside :meth:`UNet.forward` to a multiple of ``2**depth`` and cropped back.

The network compiles with ``torch.jit.script`` (a BioImage Model Zoo package ships it as
TorchScript), so ``forward`` keeps to TorchScript's subset of Python; and this module imports
nothing but torch, so a package can carry it as its architecture file.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(dims: int, c_in: int, c_out: int, kernel: int = 3) -> nn.Module:
    cls = nn.Conv2d if dims == 2 else nn.Conv3d
    return cls(c_in, c_out, kernel, padding=kernel // 2)


class _Block(nn.Sequential):
    def __init__(self, dims: int, c_in: int, c_out: int) -> None:
        super().__init__(
            _conv(dims, c_in, c_out),
            nn.LeakyReLU(0.1, inplace=True),
            _conv(dims, c_out, c_out),
            nn.LeakyReLU(0.1, inplace=True),
        )


class _MergeBlock(_Block):
    """A decoder level: the first convolution takes the up-sampled path and the skip.

    ``conv(cat([up, skip]))`` is computed as ``conv_up(up) + conv_skip(skip)`` with the two
    halves of the same weight (identical result and parameters): concatenating along channels
    in the channels-last layout is a slow strided copy on the CPU.
    """

    def merge(self, up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        conv = self[0]
        split = up.shape[1]
        if up.dim() == 4:
            h = F.conv2d(up, conv.weight[:, :split], None, padding=conv.padding)
            h = h + F.conv2d(skip, conv.weight[:, split:], conv.bias, padding=conv.padding)
        else:
            h = F.conv3d(up, conv.weight[:, :split], None, padding=conv.padding)
            h = h + F.conv3d(skip, conv.weight[:, split:], conv.bias, padding=conv.padding)
        return self[3](self[2](self[1](h)))


class UNet(nn.Module):
    """U-Net denoiser ``f``: an image in, an image of the same shape out.

    Parameters
    ----------
    dims : int
        2 for images ``(B, C, Y, X)``, 3 for volumes ``(B, C, Z, Y, X)``.
    channels : int
        Image channels in and out.
    width : int
        Feature channels at the first level; level ``k`` has ``width * min(2**k, 4)``.
    depth : int
        Number of down-samplings.
    residual : bool
        Predict a correction added to the input, ``f(y) = y + g(y)`` (residual learning). It
        starts next to the identity, where the paper's GR2R objective collapses fastest.
    in_channels : int or None
        Input channels when they differ from the output's (None: ``channels``): neighbouring
        planes stacked as channels, the centre plane's in the middle (its channels are the
        ones a residual network adds back).

    Examples
    --------
    >>> net = UNet(dims=2, channels=1, width=8, depth=2)
    >>> net(torch.zeros(1, 1, 37, 50)).shape
    torch.Size([1, 1, 37, 50])
    """

    def __init__(self, dims: int = 2, channels: int = 1, width: int = 32, depth: int = 3,
                 residual: bool = False, in_channels: int | None = None) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, not {dims}")
        self.dims, self.channels, self.width, self.depth = dims, channels, width, depth
        self.residual = residual
        self.in_channels = channels if in_channels is None else int(in_channels)
        self.centre = (self.in_channels - channels) // 2  # first channel of the centre plane
        widths = [width * min(2**k, 4) for k in range(depth + 1)]
        self.encoders = nn.ModuleList()
        c = self.in_channels
        for w in widths:
            self.encoders.append(_Block(dims, c, w))
            c = w
        self.decoders = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.decoders.append(_MergeBlock(dims, c + w, w))
            c = w
        self.head = _conv(dims, c, channels, kernel=1)

    __jit_unused_properties__ = ["multiple", "receptive_radius"]  # noqa: RUF012

    @property
    def multiple(self) -> int:
        """Spatial sizes are padded to a multiple of this inside :meth:`forward`."""
        return 2**self.depth

    @property
    def receptive_radius(self) -> int:
        """Pixels of context each output pixel depends on, on each side (an upper bound)."""
        radius = 0
        for level in range(self.depth + 1):
            # two 3x3 convolutions at this level, on the encoder side and (but for the bottom)
            # on the decoder side, each adding one pixel of that level's grid
            convs = 2 if level == self.depth else 4
            radius += convs * 2**level
            if level < self.depth:
                radius += 2**level  # pooling window and nearest up-sampling offset
        return radius

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.shape[2:]
        multiple = 1 << self.depth
        pad: list[int] = []
        fits = True  # reflect needs the padding shorter than the side
        for i in range(len(spatial) - 1, -1, -1):
            extra = (multiple - spatial[i] % multiple) % multiple
            pad += [0, extra]
            fits = fits and extra < spatial[i]
        padded = sum(pad) > 0
        if padded:
            # replicate handles inputs too small to reflect
            x = F.pad(x, pad, mode="reflect" if fits else "replicate")
        skips: list[torch.Tensor] = []
        h = x
        for k, enc in enumerate(self.encoders):
            h = enc(h)
            if k < self.depth:
                skips.append(h)
                h = F.max_pool2d(h, 2) if self.dims == 2 else F.max_pool3d(h, 2)
        for dec in self.decoders:
            h = dec.merge(F.interpolate(h, scale_factor=2.0, mode="nearest"), skips.pop())
        out = self.head(h)
        if self.residual:
            out = out + x.narrow(1, self.centre, self.channels)
        if padded:
            for i in range(len(spatial)):
                out = out.narrow(2 + i, 0, spatial[i])
        return out


class Ensemble(nn.Module):
    """Several U-Nets of one shape trained side by side; the denoiser is their mean.

    Each member starts from its own weights (random, or one of several pretrained priors:
    :func:`~.prior.load_prior`) and, in training, sees its own patches and
    its own draws of the generated noise, so their errors differ in part, and their mean's
    squared error is at most the members' average (the mean of squares bounds the square of
    the mean). In training mode a batch holds the members' samples interleaved: sample ``i`` goes
    to member ``i % members`` (a batch whose size is not a multiple of ``members`` goes to all
    of them, as in evaluation); in evaluation mode every member denoises the whole batch and
    the outputs are averaged. Keyword arguments are :class:`UNet`'s.

    Examples
    --------
    >>> net = Ensemble(members=2, dims=2, channels=1, width=8, depth=2).eval()
    >>> net(torch.zeros(1, 1, 37, 50)).shape
    torch.Size([1, 1, 37, 50])
    """

    def __init__(self, members: int = 2, dims: int = 2, channels: int = 1, width: int = 32,
                 depth: int = 3, residual: bool = False, in_channels: int | None = None) -> None:
        super().__init__()
        if members < 1:
            raise ValueError(f"members must be at least 1, not {members}")
        self.dims, self.channels = dims, channels
        self.members = nn.ModuleList([UNet(dims, channels, width, depth, residual, in_channels)
                                      for _ in range(members)])

    __jit_unused_properties__ = ["multiple", "receptive_radius"]  # noqa: RUF012

    @property
    def multiple(self) -> int:
        """The members' :attr:`UNet.multiple` (they share one shape)."""
        return self.members[0].multiple

    @property
    def receptive_radius(self) -> int:
        """The members' :attr:`UNet.receptive_radius`."""
        return self.members[0].receptive_radius

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = len(self.members)
        if self.training and x.shape[0] % k == 0:
            parts: list[torch.Tensor] = []
            for i, member in enumerate(self.members):
                parts.append(member(x[i::k]))
            return torch.stack(parts, 1).flatten(0, 1)
        total = torch.zeros(0)
        for i, member in enumerate(self.members):
            out = member(x)
            total = out if i == 0 else total + out
        return total / k


def unets(net: nn.Module) -> list[nn.Module]:
    """The U-Nets of ``net``: an :class:`Ensemble`'s members, or ``net`` itself."""
    return list(net.members) if isinstance(net, Ensemble) else [net]


def place(net: nn.Module, device: torch.device | str) -> nn.Module:
    """Move ``net`` to ``device`` in the memory layout that runs fastest there.

    2D convolutions on the CPU and CUDA run faster with channels-last weights (measured on
    the CPU: 1.6x inference and 1.25x training for the ``fast`` network); the outputs follow
    the weights' layout, so inputs need no conversion.
    """
    device = torch.device(device)
    dims = getattr(net, "dims", 2)
    if dims == 2 and device.type in ("cpu", "cuda"):
        return net.to(device=device, memory_format=torch.channels_last)
    return net.to(device=device, memory_format=torch.contiguous_format)


def build_network(dims: int, channels: int, width: int, depth: int, residual: bool = False,
                  context: int = 0, members: int = 1) -> nn.Module:
    """The network a :class:`~napari_gr2r.engine.config.TrainConfig` describes: ``channels``
    out, and in ``channels`` for each of the ``2 * context + 1`` planes it sees; a
    :class:`UNet`, or an :class:`Ensemble` of ``members`` of them."""
    kwargs = dict(dims=dims, channels=channels, width=width, depth=depth, residual=residual,
                  in_channels=channels * (2 * context + 1))
    if members == 1:
        return UNet(**kwargs)
    return Ensemble(members=members, **kwargs)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
