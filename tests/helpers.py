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
    widget.preset.setCurrentText("fast")
    widget.width.setValue(width)
    widget.depth.setValue(2)
    widget.patch.setValue(32)
    widget.batch.setValue(batch)
    widget.steps.setValue(steps)
    if lr is not None:
        widget.lr.setValue(lr)
    if net_dims is not None:
        widget.net_dims.setCurrentText(net_dims)
    if preview_every is not None:
        widget.preview_every.setValue(preview_every)
    widget.device.setCurrentIndex(widget.device.findData("cpu"))
