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
from ..io.hotpixels import HotPixelRule
from ..io.sources import ImageSource
from ..noise.level import NoiseLevel
from .run import RunRecord, RunState


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
    data_shape : tuple of int or None
        Shape of the image it was first trained on (None for models from before it was kept).
    run : RunRecord
        The training bookkeeping: steps taken, history, optimiser state, best step and, for
        an unfinished run, what resuming it needs (``run.unfinished``). ``step``,
        ``history``, ``optimizer_state``, ``best_step`` and ``best_val_loss`` read and write
        its fields; ``training_state`` is ``run.unfinished`` in the dict form a model file
        stores.
    """

    net: nn.Module
    config: TrainConfig
    axes: str
    channels: int
    dims: int
    normalization: Normalization
    noise_level: NoiseLevel
    data_shape: tuple[int, ...] | None = None
    run: RunRecord = field(default_factory=RunRecord)

    # the run's fields, read and written where they were before the record existed
    @property
    def step(self) -> int:
        return self.run.step

    @step.setter
    def step(self, value: int) -> None:
        self.run.step = value

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.run.history

    @history.setter
    def history(self, value: list[dict[str, Any]]) -> None:
        self.run.history = value

    @property
    def optimizer_state(self) -> dict[str, Any] | None:
        return self.run.optimizer_state

    @optimizer_state.setter
    def optimizer_state(self, value: dict[str, Any] | None) -> None:
        self.run.optimizer_state = value

    @property
    def best_step(self) -> int:
        return self.run.best_step

    @best_step.setter
    def best_step(self, value: int) -> None:
        self.run.best_step = value

    @property
    def best_val_loss(self) -> float | None:
        return self.run.best_val_loss

    @best_val_loss.setter
    def best_val_loss(self, value: float | None) -> None:
        self.run.best_val_loss = value

    @property
    def training_state(self) -> dict[str, Any] | None:
        """The unfinished run in a model file's dict form (None once the run is done); the
        typed form is ``run.unfinished``."""
        return self.run.unfinished.to_dict() if self.run.unfinished is not None else None

    @training_state.setter
    def training_state(self, value: dict[str, Any] | RunState | None) -> None:
        if value is not None and not isinstance(value, RunState):
            value = RunState.from_dict(value)
        self.run.unfinished = value

    def check_compatible(self, info: AxesInfo) -> None:
        """Raise :class:`AxesError` when an image does not fit this model."""
        if info.n_channels != self.channels:
            raise AxesError(
                f"This model was trained on {self.channels} channel(s) (axes {self.axes!r}) but "
                f"the image has {info.n_channels} (axes {info.axes!r}). Use a model trained on "
                "images with the same channels, or check the axes."
            )
        if self.dims == 3 and info.size("Z") < 2:
            what = ("a single plane (its Z axis has one slice)" if "Z" in info.axes
                    else "no Z axis")
            raise AxesError(
                f"This model is a 3D network (trained on axes {self.axes!r}) and the image has "
                f"{what} (axes {info.axes!r}). Use a 2D model, or give the Z axis in the axes."
            )

    def open_source(self, data: Any, axes: str | None) -> ImageSource:
        """Reader for an image this model will denoise; ``axes=None`` takes the model's axes.
        It replaces isolated hot and dead pixels as training did (``config.hot_pixels``)."""
        if axes is None:
            if len(data.shape) != len(self.axes):
                raise AxesError(
                    f"The image has {len(data.shape)} dimensions and the model was trained on "
                    f"axes {self.axes!r}; pass axes= for this image."
                )
            axes = self.axes
        source = ImageSource(data, axes)
        self.check_compatible(source.info)
        if self.config.hot_pixels:
            source.hot_pixels = HotPixelRule.from_noise(self.noise_level, self.normalization)
        return source

    def __repr__(self) -> str:
        return (f"GR2RModel(method={self.config.method!r}, axes={self.axes!r}, dims={self.dims}, "
                f"channels={self.channels}, width={self.config.width}, depth={self.config.depth}, "
                + (f"members={self.config.members}, " if self.config.members > 1 else "")
                + f"step={self.step})")
