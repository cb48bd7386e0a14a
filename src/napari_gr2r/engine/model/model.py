"""The trained denoiser as data: a network plus everything needed to apply it correctly.

The model knows which images it fits (:meth:`GR2RModel.open_source`); applying it is the
job of :mod:`.inference` and :mod:`.outofcore`, and :func:`napari_gr2r.engine.denoise`
chooses between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..config import TrainConfig
from ..data.normalization import Normalization
from ..errors import AxesError
from ..io.axes import AxesInfo
from ..io.sources import ImageSource
from ..noise.level import NoiseLevel


@dataclass
class GR2RModel:
    """A denoiser and its context.

    Attributes
    ----------
    net : torch.nn.Module
        The U-Net, in evaluation mode after training.
    config : TrainConfig
        How it was trained (and how to rebuild the network).
    axes : str
        Axes of the data it was trained on.
    channels, dims : int
        Image channels and network dimensionality (2 or 3).
    normalization : Normalization
        The intensity scaling learned from the training data; denoising inverts it.
    noise_level : NoiseLevel
        Estimated noise of the training data (normalised units).
    step : int
        Optimiser steps taken so far; ``history`` has the progress events' numbers.
    data_shape : tuple of int or None
        Shape of the image it was first trained on (None for models from before it was kept).
    training_state : dict or None
        What resuming an unfinished training run needs (see :mod:`.resume`): set by a
        checkpoint written while training ran, or by a stopped run; None once a run is done.
    """

    net: nn.Module
    config: TrainConfig
    axes: str
    channels: int
    dims: int
    normalization: Normalization
    noise_level: NoiseLevel
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    optimizer_state: dict[str, Any] | None = None
    best_step: int = 0
    best_val_loss: float | None = None
    data_shape: tuple[int, ...] | None = None
    training_state: dict[str, Any] | None = None

    def check_compatible(self, info: AxesInfo) -> None:
        """Raise :class:`AxesError` when an image does not fit this model."""
        if info.n_channels != self.channels:
            raise AxesError(
                f"This model was trained on {self.channels} channel(s) (axes {self.axes!r}) but "
                f"the image has {info.n_channels} (axes {info.axes!r}). Use a model trained on "
                "images with the same channels, or check the axes."
            )
        if self.dims == 3 and info.size("Z") < 2:
            raise AxesError(
                f"This model is a 3D network (trained on axes {self.axes!r}) and the image has no "
                f"Z axis (axes {info.axes!r}). Use a 2D model, or give the Z axis in the axes."
            )

    def open_source(self, data: Any, axes: str | None) -> ImageSource:
        """Reader for an image this model will denoise; ``axes=None`` takes the model's axes."""
        if axes is None:
            if len(data.shape) != len(self.axes):
                raise AxesError(
                    f"The image has {len(data.shape)} dimensions and the model was trained on "
                    f"axes {self.axes!r}; pass axes= for this image."
                )
            axes = self.axes
        source = ImageSource(data, axes)
        self.check_compatible(source.info)
        return source

    def __repr__(self) -> str:
        return (f"GR2RModel(method={self.config.method!r}, axes={self.axes!r}, dims={self.dims}, "
                f"channels={self.channels}, width={self.config.width}, depth={self.config.depth}, "
                f"step={self.step})")
