"""Helpers shared by the tests."""

from __future__ import annotations

import numpy as np


def psnr(image: np.ndarray, clean: np.ndarray) -> float:
    clean = np.asarray(clean, np.float64)
    mse = np.mean((np.asarray(image, np.float64) - clean) ** 2)
    return float(10 * np.log10((clean.max() - clean.min()) ** 2 / mse))


def tiny(**overrides):
    """A network and budget small enough for a test on two CPU cores."""
    from napari_gr2r.engine import TrainConfig

    values = dict(width=16, depth=2, patch_size=32, batch_size=8, steps=150, event_every=10,
                  val_every=25, seed=0)
    values.update(overrides)
    return TrainConfig.from_preset("fast", **values)


def shrink_widget(widget, steps: int, width: int = 8, batch: int = 4, lr: float | None = None,
                  net_dims: str | None = None, preview_every: int | None = None) -> None:
    """Set the GR2R widget to the fast preset shrunk to a network that trains in seconds."""
    widget.settings_panel.preset.setCurrentText("fast")
    widget.settings_panel.width.setValue(width)
    widget.settings_panel.depth.setValue(2)
    widget.settings_panel.patch.setValue(32)
    widget.settings_panel.batch.setValue(batch)
    widget.settings_panel.steps.setValue(steps)
    if lr is not None:
        widget.settings_panel.lr.setValue(lr)
    if net_dims is not None:
        widget.settings_panel.net_dims.setCurrentText(net_dims)
    if preview_every is not None:
        widget.settings_panel.preview_every.setValue(preview_every)
    widget.settings_panel.device.setCurrentIndex(widget.settings_panel.device.findData("cpu"))


def tiny_model(seed: int = 0, dims: int = 2, axes: str = "YX", channels: int = 1):
    """An untrained width-4, depth-2 U-Net with a fixed normalisation (100..1100): a valid
    model for tests of inputs and outputs, built in milliseconds."""
    import torch

    from napari_gr2r.engine import GR2RModel, TrainConfig
    from napari_gr2r.engine.data.normalization import Normalization
    from napari_gr2r.engine.model.networks import build_network
    from napari_gr2r.engine.noise.level import NoiseLevel

    torch.manual_seed(seed)
    return GR2RModel(
        net=build_network(dims, channels, 4, 2).eval(), config=TrainConfig(width=4, depth=2),
        axes=axes, channels=channels, dims=dims,
        normalization=Normalization([100.0] * channels, [1100.0] * channels),
        noise_level=NoiseLevel([0.0] * channels, [1e-3] * channels, [1e-3] * channels),
    )
