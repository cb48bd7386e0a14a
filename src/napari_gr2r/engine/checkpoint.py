"""One self-describing model file, written atomically and loaded without running code.

The file is a ``torch.save`` of plain types only (dicts, lists, strings, numbers, tensors):
config, axes, channels, normalisation, noise level, weights, optimiser state, step, history
and versions. It loads with ``torch.load(weights_only=True)``, and the network is rebuilt
from the stored config.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from .config import TrainConfig
from .errors import CheckpointError
from .model import GR2RModel
from .networks import build_network
from .noise import NoiseLevel
from .normalization import Normalization

FORMAT = "napari-gr2r-model"
FORMAT_VERSION = 1
SUFFIX = ".gr2r.pt"


def _versions() -> dict[str, str]:
    return {"napari_gr2r": str(__version__), "torch": str(torch.__version__)}


def model_to_dict(model: GR2RModel) -> dict[str, Any]:
    """The plain-type content of a model file."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "axes": model.axes,
        "channels": model.channels,
        "dims": model.dims,
        "normalization": {"low": list(model.normalization.low),
                          "high": list(model.normalization.high)},
        "noise_level": {"a": list(model.noise_level.a), "b": list(model.noise_level.b),
                        "typical": list(model.noise_level.typical),
                        "kernel": model.noise_level.kernel},
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.net.state_dict().items()},
        "optimizer": _to_cpu(model.optimizer_state),
        "step": model.step,
        "best_step": model.best_step,
        "best_val_loss": model.best_val_loss,
        "history": [dict(row) for row in model.history],
        "versions": _versions(),
    }


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def save_model(model: GR2RModel, path: str | os.PathLike) -> Path:
    """Write ``model`` to ``path`` atomically (a temporary file in the same folder, renamed).

    An interrupted save leaves any earlier file at ``path`` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = model_to_dict(model)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_model(path: str | os.PathLike, device: str = "cpu") -> GR2RModel:
    """Load a model file written by :func:`save_model`.

    Raises
    ------
    CheckpointError
        When the file is missing, damaged, not a napari-gr2r model, or from a newer format.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No model file at {path}.")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch.load raises many unrelated types on damaged input
        raise CheckpointError(
            f"{path} is not a readable napari-gr2r model (damaged, truncated, or another kind "
            f"of file): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    return model_from_dict(payload, source=str(path))


def model_from_dict(payload: Any, source: str = "the model") -> GR2RModel:
    """Rebuild a :class:`GR2RModel` from :func:`model_to_dict`'s content."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{source} is not a napari-gr2r model file (it may be a checkpoint of another "
            "program). Train a model with napari-gr2r and save it with save_model()."
        )
    if int(payload.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{source} was written by a newer napari-gr2r "
            f"({payload.get('versions', {}).get('napari_gr2r', '?')}); upgrade napari-gr2r."
        )
    try:
        config = TrainConfig.from_dict(payload["config"])
        net = build_network(payload["dims"], payload["channels"], config.width, config.depth,
                            config.residual)
        net.load_state_dict(payload["state_dict"])
        net.eval()
        return GR2RModel(
            net=net, config=config, axes=payload["axes"], channels=payload["channels"],
            dims=payload["dims"], normalization=Normalization(**payload["normalization"]),
            noise_level=NoiseLevel(**payload["noise_level"]), step=payload["step"],
            history=list(payload.get("history", [])),
            optimizer_state=payload.get("optimizer"),
            best_step=payload.get("best_step", payload["step"]),
            best_val_loss=payload.get("best_val_loss"),
        )
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{source} is incomplete or inconsistent: {exc}") from None
