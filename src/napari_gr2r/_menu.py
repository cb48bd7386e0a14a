"""npe2 menu commands (Layers > Filter > Denoise); thin wrappers over :mod:`._qt._commands`."""

from __future__ import annotations

import napari
from qtpy.QtWidgets import QFileDialog

from napari_gr2r import engine

ONE_CLICK_PRESET = "fast"


def one_click_config() -> engine.TrainConfig:
    """The training settings of "Train GR2R and denoise": the default preset."""
    return engine.TrainConfig.from_preset(ONE_CLICK_PRESET)


def train_and_denoise(viewer: napari.viewer.Viewer) -> None:
    """Train GR2R on the selected image layer and add the denoised result as a layer."""
    from ._qt._commands import train_and_denoise as run

    run(viewer, one_click_config())


def denoise_with_saved_model(viewer: napari.viewer.Viewer) -> None:
    """Ask for a model file and denoise the selected image layer with it."""
    from ._qt._commands import denoise_with_model

    path, _ = QFileDialog.getOpenFileName(
        None, "Denoise with saved GR2R model", "", "GR2R model (*.gr2r.pt *.pt);;All files (*)",
    )
    if path:
        denoise_with_model(viewer, path)
