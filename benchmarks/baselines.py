r"""Baselines: Neighbor2Neighbor on the engine's U-Net, CAREamics N2V, BM3D.

Neighbor2Neighbor (Huang et al., CVPR 2021) trains on pairs of sub-images of the same noisy
image: in each 2x2 cell two different neighbouring pixels are picked at random, one for each
sub-image ``g1(y)``, ``g2(y)``. With ``f`` the network and ``sg`` a stop-gradient::

    d  = f(g1(y)) - g2(y)
    e  = g1(sg[f(y)]) - g2(sg[f(y)])
    L  = mean(d^2) + lambda_t * mean((d - e)^2),   lambda_t = 2 t / T

(``lambda_t`` is ramped from 0 to 2 over training, as in the authors' code,
``TaoHuang2018/Neighbor2Neighbor``). It runs through the engine's own :class:`Trainer`, so
the network, patches, optimiser, schedule, validation and inference are those of the other
methods; only the objective differs. Patches are twice the size of the others' so that the
network sees sub-images of the same size.

The other baselines wrap their packages and are skipped when those are not installed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from napari_gr2r import engine
from napari_gr2r.engine.training.losses import Objective, StepResult

from .common import Noise, optional

# the eight ordered pairs of 4-neighbours in a 2x2 cell (cell pixels numbered 0 1 / 2 3)
_PAIRS = torch.tensor([[0, 1], [0, 2], [1, 3], [2, 3], [1, 0], [2, 0], [3, 1], [3, 2]])


def neighbor_subsample(images: list[torch.Tensor], generator: torch.Generator,
                       ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The two sub-images ``(g1(x), g2(x))`` of each ``(B, C, H, W)`` image, same random cells.

    Odd sides lose their last row or column.

    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.arange(16.).reshape(1, 1, 4, 4)
    >>> (a, b), = neighbor_subsample([x], g)
    >>> a.shape, bool((a != b).all())
    (torch.Size([1, 1, 2, 2]), True)
    """
    b, _, h, w = images[0].shape
    h2, w2 = h // 2, w // 2
    choice = torch.randint(0, len(_PAIRS), (b, 1, h2, w2), generator=generator,
                           device=generator.device).to(images[0].device)
    pairs = _PAIRS.to(images[0].device)[choice]  # (B, 1, h2, w2, 2)
    out = []
    for x in images:
        c = x.shape[1]
        cells = x[:, :, :2 * h2, :2 * w2].reshape(b, c, h2, 2, w2, 2)
        cells = cells.permute(0, 1, 2, 4, 3, 5).reshape(b, c, h2, w2, 4)
        first = torch.gather(cells, -1, pairs[..., :1].expand(b, c, h2, w2, 1))[..., 0]
        second = torch.gather(cells, -1, pairs[..., 1:].expand(b, c, h2, w2, 1))[..., 0]
        out.append((first, second))
    return out


class Neighbor2NeighborLoss(Objective):
    """The Neighbor2Neighbor objective (see the module docstring) for the engine's trainer.

    Training calls (gradient enabled) advance the ramp of ``lambda``; validation calls (no
    gradient) use the final ``lambda`` so validation losses are comparable across steps.
    """

    term_names = ("reconstruction", "regulariser")

    def __init__(self, total_steps: int, final_lambda: float = 2.0) -> None:
        self.total_steps, self.final_lambda = max(int(total_steps), 1), final_lambda
        self.step = 0

    def __call__(self, net: nn.Module, y: torch.Tensor, target: torch.Tensor | None,
                 generator: torch.Generator) -> StepResult:
        training = torch.is_grad_enabled()
        if training:
            lam = self.final_lambda * self.step / self.total_steps
            self.step += 1
        else:
            lam = self.final_lambda
        with torch.no_grad():
            fy = net(y)
        (g1y, g2y), (g1f, g2f) = neighbor_subsample([y, fy], generator)
        diff = net(g1y) - g2y
        rec = diff.square().mean()
        reg = (diff - (g1f - g2f)).square().mean()
        loss = rec + lam * reg
        return StepResult(loss, {"reconstruction": float(rec.detach()),
                                 "regulariser": float(reg.detach())},
                          float((y - fy).square().mean()))


def neighbor2neighbor_trainer(noisy: np.ndarray, axes: str, config: engine.TrainConfig,
                              ) -> engine.Trainer:
    """The engine's trainer with the Neighbor2Neighbor objective, patches twice the size."""
    cfg = config.replace(patch_size=2 * config.patch_size, net_dims="2d")
    trainer = engine.Trainer(noisy, axes, cfg, device="cpu")
    trainer.objective = Neighbor2NeighborLoss(cfg.steps)
    return trainer


def train_neighbor2neighbor(noisy: np.ndarray, axes: str, config: engine.TrainConfig,
                            callback: Any = None) -> engine.GR2RModel:
    """Train the engine's U-Net with Neighbor2Neighbor; patches twice ``config.patch_size``."""
    return neighbor2neighbor_trainer(noisy, axes, config).fit(callback)


# --------------------------------------------------------------------------------------------
# CAREamics N2V


def import_careamics() -> Any | None:
    """CAREamics, or None when it is not installed.

    CAREamics imports ``torchvision`` at module level for its LVAE models only; where no
    torchvision build matches the installed torch (no CPU wheel of it for every torch), an
    empty stand-in module is registered so that N2V, which never calls it, can be used.
    Lightning and torchmetrics are imported first, so they see no torchvision at all.
    """
    import importlib.machinery
    import importlib.util
    import sys
    import types

    if importlib.util.find_spec("careamics") is None:
        return None
    if "torchvision" not in sys.modules and importlib.util.find_spec("torchvision") is None:
        import lightning  # noqa: F401
        import torchmetrics  # noqa: F401

        tv = types.ModuleType("torchvision")
        transforms = types.ModuleType("torchvision.transforms")
        functional = types.ModuleType("torchvision.transforms.functional")
        tv.__version__ = "0+absent"
        tv.__spec__ = importlib.machinery.ModuleSpec("torchvision", None)
        tv.transforms, transforms.functional = transforms, functional
        sys.modules.update({"torchvision": tv, "torchvision.transforms": transforms,
                            "torchvision.transforms.functional": functional})
    try:
        import careamics
    except Exception:
        return None
    return careamics


def careamics_available() -> bool:
    return import_careamics() is not None


def n2v_config(steps: int, patch: int, batch: int, axes: str = "YX", n_val: int = 8,
               max_seconds: float | None = None) -> Any:
    """A CAREamics N2V configuration: its defaults, with our patch and batch size.

    CAREamics counts epochs, and an epoch of an in-memory image is one pass over its grid of
    patches. The budget is ``steps`` epochs, capped at ``max_seconds`` of wall time when given
    (Lightning's ``max_time``). Data loading runs in the main process (``num_workers=0``):
    worker processes cost more than they give on a few cores.
    """
    import_careamics()
    from careamics.config import create_advanced_n2v_config

    trainer_params: dict[str, Any] = {}
    if max_seconds is not None:
        trainer_params["max_time"] = {"seconds": max(1, round(max_seconds))}
    return create_advanced_n2v_config(
        experiment_name="n2v_benchmark", data_type="array", axes=axes,
        patch_size=[patch, patch], batch_size=batch, num_epochs=max(1, steps),
        n_val_patches=n_val, num_workers=0, trainer_params=trainer_params, seed=1,
    )


def train_n2v(noisy: np.ndarray, steps: int, patch: int = 64, batch: int = 8,
              max_seconds: float | None = None, workdir: Path | None = None,
              axes: str = "YX") -> Any:
    """Train CAREamics' N2V (its default network and settings) on one 2D image (``YX``) or
    a series of them (``SYX``).

    Returns the ``CAREamist``; its ``trainer.global_step`` is the optimiser steps taken.
    """
    import_careamics()
    from careamics import CAREamist

    ny, nx = noisy.shape[-2:]
    # a quarter of the patch grid at most is held out, as our trainer holds out rows
    n_images = noisy.shape[0] if axes == "SYX" else 1
    n_val = max(1, min(8, n_images * (ny // patch) * (nx // patch) // 4))
    config = n2v_config(steps, patch, batch, axes=axes, n_val=n_val, max_seconds=max_seconds)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="n2v_bench_"))
    careamist = CAREamist(config, work_dir=str(workdir), enable_progress_bar=False)
    careamist.train(train_data=noisy.astype(np.float32))
    return careamist


def predict_n2v(careamist: Any, noisy: np.ndarray, tile: int | None = None,
                overlap: int = 48, batch_size: int = 4) -> np.ndarray:
    """CAREamics' prediction, tiled when ``tile`` is given."""
    kwargs: dict[str, Any] = {}
    if tile is not None:
        kwargs = dict(tile_size=(tile, tile), tile_overlap=(overlap, overlap))
    pred = careamist.predict(noisy.astype(np.float32), axes="YX", data_type="array",
                             batch_size=batch_size, **kwargs)
    if isinstance(pred, tuple):
        pred = pred[0]
    if isinstance(pred, list):
        pred = pred[0]
    return np.asarray(pred, dtype=np.float32).reshape(noisy.shape)


# --------------------------------------------------------------------------------------------
# BM3D


def bm3d_available() -> bool:
    return optional("bm3d") is not None


def anscombe(y: np.ndarray, sigma: float, gain: float) -> np.ndarray:
    """Generalised Anscombe transform of Poisson-Gaussian data (zero offset): unit variance."""
    z = y / gain
    s = sigma / gain
    return 2.0 * np.sqrt(np.maximum(z + 3.0 / 8.0 + s**2, 0.0))


def inverse_anscombe(d: np.ndarray, sigma: float, gain: float) -> np.ndarray:
    """Closed-form approximation of the exact unbiased inverse (Mäkitalo and Foi 2011, 2013)."""
    d = np.maximum(d, 0.8)
    s = sigma / gain
    r = np.sqrt(1.5)
    z = 0.25 * d**2 + 0.25 * r / d - 11.0 / 8.0 / d**2 + 5.0 / 8.0 * r / d**3 - 1.0 / 8.0 - s**2
    return np.maximum(z, 0.0) * gain


def bm3d_denoise(noisy: np.ndarray, noise: Noise) -> np.ndarray:
    """BM3D with the true noise: its σ, its PSD when correlated, Anscombe for Poisson-Gaussian."""
    import bm3d

    if not hasattr(np, "trapz"):
        # bm3d 4.0.3 calls numpy.trapz for coloured noise; numpy 2.4 renamed it trapezoid
        setattr(np, "trapz", np.trapezoid)  # noqa: B010 (a literal attribute trips NPY201)
    planes = noisy.reshape(-1, *noisy.shape[-2:]).astype(np.float64)
    out = []
    for plane in planes:
        if noise.gain > 0:
            d = bm3d.bm3d(anscombe(plane, noise.sigma, noise.gain), sigma_psd=1.0)
            out.append(inverse_anscombe(d, noise.sigma, noise.gain))
        elif noise.kernel is not None:
            ny, nx = plane.shape
            psd = np.abs(np.fft.fft2(noise.kernel * noise.sigma, (ny, nx))) ** 2 * ny * nx
            out.append(bm3d.bm3d(plane, sigma_psd=psd))
        else:
            out.append(bm3d.bm3d(plane, sigma_psd=noise.sigma))
    return np.stack(out).reshape(noisy.shape).astype(np.float32)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (CAREamics draws from the global generator)


__all__ = [
    "Neighbor2NeighborLoss",
    "anscombe",
    "bm3d_available",
    "bm3d_denoise",
    "careamics_available",
    "inverse_anscombe",
    "neighbor2neighbor_trainer",
    "neighbor_subsample",
    "predict_n2v",
    "seed_everything",
    "train_n2v",
    "train_neighbor2neighbor",
]
