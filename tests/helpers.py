"""Helpers shared by the tests.

Names: ``tiny()`` is the smallest *training configuration* that learns something in a test;
``tiny_model()`` an *untrained* model for tests of inputs and outputs; ``StubSettings`` serves
a widget panel a configuration where no settings panel does.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np


def psnr(image: np.ndarray, clean: np.ndarray) -> float:
    clean = np.asarray(clean, np.float64)
    mse = np.mean((np.asarray(image, np.float64) - clean) ** 2)
    return float(10 * np.log10((clean.max() - clean.min()) ** 2 / mse))


def tiny(**overrides):
    """A network and budget small enough for a test on two CPU cores, from random weights
    (``start="scratch"``: what these tests measure is training; tests/engine/model/test_prior.py
    tests the fast preset's pretrained start), denoising in one pass (``tta=1``: the tests of
    test-time flips ask for them)."""
    from napari_gr2r.engine import TrainConfig

    values = dict(width=16, depth=2, patch_size=32, batch_size=8, steps=150, event_every=10,
                  val_every=25, seed=0, start="scratch", tta=1)
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
    widget.settings_panel.start_prior.setChecked(False)  # the prior fits width 16 only
    if lr is not None:
        widget.settings_panel.lr.setValue(lr)
    if net_dims is not None:
        widget.settings_panel.net_dims.setCurrentText(net_dims)
    if preview_every is not None:
        widget.settings_panel.preview_every.setValue(preview_every)
    widget.settings_panel.device.setCurrentIndex(widget.settings_panel.device.findData("cpu"))


def tiny_model(seed: int = 0, dims: int = 2, axes: str = "YX", channels: int = 1,
               width: int = 4, depth: int = 2):
    """An untrained U-Net (width 4, depth 2 unless given) with a fixed normalisation
    (100..1100): a valid model for tests of inputs and outputs, built in milliseconds."""
    import torch

    from napari_gr2r.engine import GR2RModel, TrainConfig
    from napari_gr2r.engine.data.normalization import Normalization
    from napari_gr2r.engine.model.networks import build_network
    from napari_gr2r.engine.noise.level import NoiseLevel

    torch.manual_seed(seed)
    return GR2RModel(
        net=build_network(dims, channels, width, depth).eval(),
        config=TrainConfig(width=width, depth=depth, members=1, tta=1),
        axes=axes, channels=channels, dims=dims,
        normalization=Normalization([100.0] * channels, [1100.0] * channels),
        noise_level=NoiseLevel([0.0] * channels, [1e-3] * channels, [1e-3] * channels),
    )


def blobs(size: int = 96, count: int = 10, rng: np.random.Generator | int = 0, *,
          margin: float = 8, radius: tuple[float, float] = (4, 10), height: float = 120,
          base: float = 40, ramp: float = 0.3) -> np.ndarray:
    """A clean test image with no noise of its own: ``count`` Gaussian blobs (centres at least
    ``margin`` from the border, sds drawn in ``radius``) on a ramp along X (float64)."""
    rng = np.random.default_rng(rng) if isinstance(rng, int) else rng
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    image = base + ramp * xx
    for _ in range(count):
        cy, cx = rng.uniform(margin, size - margin, 2)
        r = rng.uniform(*radius)
        image += height * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    return image


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``napari-gr2r ARGS`` in a fresh interpreter, output captured as text: what a user's
    shell sees, warnings and interpreter exit included."""
    return subprocess.run([sys.executable, "-m", "napari_gr2r", *args], capture_output=True,
                          text=True, timeout=timeout)


def run_main(capsys, *args: str) -> subprocess.CompletedProcess:
    """``napari-gr2r ARGS`` through the CLI's ``main`` in this interpreter (the same parser,
    error reporting and exit status as :func:`run_cli`, without a new interpreter's seconds
    of imports), its output taken from ``capsys``."""
    from napari_gr2r.cli import main

    capsys.readouterr()  # what earlier steps of the test printed is not this command's
    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["napari-gr2r", *args], code, out, err)


class StubSettings:
    """The settings a widget panel reads, serving a fixed configuration on the CPU."""

    def __init__(self, config) -> None:
        self._config = config

    def config(self):
        return self._config

    def device_id(self) -> str:
        return "cpu"

    def preview_interval(self) -> int:
        return 0
