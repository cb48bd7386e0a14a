"""Typed progress events yielded by :meth:`Trainer.iter_fit`.

Plain dataclasses of numbers and strings: a GUI draws them, a script prints them, a test
asserts on them. None carries a tensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainEvent:
    """Base class: where training stands."""

    step: int
    total_steps: int
    elapsed_s: float

    @property
    def fraction(self) -> float:
        return self.step / self.total_steps if self.total_steps else 1.0


@dataclass
class TrainingStarted(TrainEvent):
    """Training is set up: the network, the device, the data it sees."""

    device: str = "cpu"
    net_dims: int = 2
    n_parameters: int = 0
    patch_shape: tuple[int, ...] = ()
    noise_sd: float = 0.0
    """Estimated noise standard deviation, in the input's intensity units (first channel)."""
    noise_correlation: float = 0.0
    """Measured correlation of the noise between neighbouring pixels (0: white noise)."""
    noise_source: str = "fit"
    """Where the noise level comes from: ``"fit"`` (fitted on the data) or ``"calibration"``."""
    has_validation: bool = False
    resumed_from_step: int = 0
    world_size: int = 1
    """Processes training the model together (torchrun); each step sees ``world_size`` batches."""
    backend: str = ""
    """The process group's backend (``"gloo"``, ``"nccl"``), empty for one process."""
    precision: str = "fp32"
    """The arithmetic of the training passes."""
    context: int = 0
    """Neighbouring planes on each side the network sees (``context="auto"`` resolved)."""
    members: int = 1
    """Networks trained side by side (an ensemble; ``n_parameters`` counts them all)."""
    start: str = "scratch"
    """Where the network's weights started: ``"scratch"`` or ``"prior"`` (``TrainConfig.start``),
    or ``"model"`` (a model trained further or resumed: its own weights)."""

    @property
    def networks(self) -> str:
        """What trains, in words: "a 2D network", "a 2D network from the pretrained prior",
        "an ensemble of 4 2D networks" or "an ensemble of 4 2D networks from pretrained priors"
        (each member from its own)."""
        if self.members > 1:
            text = f"an ensemble of {self.members} {self.net_dims}D networks"
            prior = " from pretrained priors"
        else:
            text = f"a {self.net_dims}D network"
            prior = " from the pretrained prior"
        return text + (prior if self.start == "prior" else "")


@dataclass
class TrainingProgress(TrainEvent):
    """Every ``event_every`` steps: the losses, averaged since the previous event."""

    loss: float = 0.0
    terms: dict[str, float] = field(default_factory=dict)
    val_loss: float | None = None
    """The latest validation loss (None before the first validation or without validation)."""
    validated: bool = False
    """True when ``val_loss`` was computed since the previous event."""
    residual_energy: float | None = None
    """``mean((y - f(y))**2)`` in normalised units; falling towards zero is a sign of collapse."""
    estimated_psnr: float | None = None
    """The latest estimate of the network's PSNR against the unknown clean image (dB, for the
    data's normalised range of 1), on the held-out patches, without a clean image (see
    :func:`napari_gr2r.engine.assess`); None before the first validation or without one, and
    where the estimated error fell to zero or below (the residual smaller than the noise it
    should hold: no number of decibels would be true)."""
    lr: float = 0.0
    patches_per_s: float = 0.0
    eta_s: float = 0.0


@dataclass
class CollapseDetected(TrainEvent):
    """The network is sliding towards the identity: its output is turning into its input."""

    residual_energy: float = 0.0
    noise_variance: float = 0.0
    message: str = ""


@dataclass
class TrainingFinished(TrainEvent):
    """Training ended, by reaching its step budget or by :meth:`Trainer.request_stop`."""

    stopped: bool = False
    best_step: int = 0
    best_val_loss: float | None = None
    collapsed: bool = False


@dataclass
class CheckpointSaved(TrainEvent):
    """The run was written to ``Trainer(..., checkpoint_path=...)``: a loadable model file."""

    path: str = ""
    resumable: bool = True
    """True while the run is unfinished (the file holds what resuming it needs); False for the
    finished run's model."""


def history_row(event: TrainingProgress) -> dict[str, Any]:
    """One row of a model's training history, from a progress event."""
    row: dict[str, Any] = {"step": event.step, "loss": event.loss, "lr": event.lr,
                           "elapsed_s": event.elapsed_s}
    row.update(event.terms)
    if event.validated:
        row["val_loss"] = event.val_loss
        if event.estimated_psnr is not None:
            row["estimated_psnr"] = event.estimated_psnr
    if event.residual_energy is not None:
        row["residual_energy"] = event.residual_energy
    return row
