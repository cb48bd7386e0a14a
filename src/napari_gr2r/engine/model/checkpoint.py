"""One self-describing model file, written atomically and loaded without running code.

The file is a ``torch.save`` of plain types only (dicts, lists, strings, numbers, tensors):
config, axes, channels, normalisation, noise level, weights, optimiser state, step, history
and versions, and, for a run that has not finished, what resuming it needs (``training``, see
:mod:`.resume`). It loads with ``torch.load(weights_only=True)``, and the network is rebuilt
from the stored config.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..._version import __version__
from ..config import TrainConfig
from ..data.normalization import Normalization
from ..devices import resolve_device
from ..errors import CheckpointError, InputError
from ..io.atomic import atomic_path
from ..io.axes import AXIS_LETTERS, MAX_CHANNELS
from ..noise.level import NoiseLevel
from .model import GR2RModel
from .networks import build_network
from .run import RunRecord, RunState

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
                        "kernel": model.noise_level.kernel,
                        "source": model.noise_level.source},
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.net.state_dict().items()},
        "optimizer": _to_cpu(model.optimizer_state),
        "step": model.step,
        "best_step": model.best_step,
        "best_val_loss": model.best_val_loss,
        "data_shape": None if model.data_shape is None else list(model.data_shape),
        "history": [dict(row) for row in model.history],
        "versions": _versions(),
        **({"training": model.run.unfinished.to_dict()}
           if model.run.unfinished is not None else {}),
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
    """Write ``model`` to ``path`` atomically (see :mod:`.atomic`).

    An interrupted save leaves any earlier file at ``path`` untouched; the file gets the
    permissions a plain ``open()`` would give it; temporaries of earlier saves that were
    killed are removed.
    """
    payload = model_to_dict(model)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)
    return Path(path)


def _not_a_model(path: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"{path} is not a napari-gr2r model file ({why}); give a file written by "
        "'napari-gr2r train' or engine.save_model()."
    )


def load_model(path: str | os.PathLike, device: str = "cpu") -> GR2RModel:
    """Load a model file written by :func:`save_model`.

    Only plain data is read (``torch.load(weights_only=True)``): a file holding other Python
    objects is refused, never run.

    Raises
    ------
    CheckpointError
        When the file is missing, damaged, not a napari-gr2r model, from a newer format, or
        holds NaN or infinite weights or a degenerate normalisation.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory; give the model file (.gr2r.pt) in it.")
    if not path.is_file():
        raise CheckpointError(f"No model file at {path}.")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head:
        raise _not_a_model(path, "it is empty")
    if head != b"PK\x03\x04":  # torch.save writes a zip archive
        raise _not_a_model(path, "it is not a PyTorch file")
    map_location = resolve_device(device)  # a bad device name is a ConfigError, not damage
    try:
        payload = _read_payload(path, map_location)
    except CheckpointError:
        raise
    except pickle.UnpicklingError:  # torch's message advises turning weights_only off: never
        raise _not_a_model(path, "it holds Python objects other than plain data, e.g. a model "
                                 "saved by another program; such files are not loaded") from None
    except Exception:  # torch.load raises many unrelated types on damaged input
        raise _not_a_model(path, "it is damaged or truncated") from None
    return model_from_dict(payload, source=str(path))


def _read_payload(path: Path, map_location: Any) -> Any:
    """The model file's content; from a BioImage Model Zoo package, its attached model file."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if not any(n.endswith("/data.pkl") for n in names):  # a zip, not a torch.save file
                return torch.load(io.BytesIO(_package_member(zf, names, path)),
                                  map_location=map_location, weights_only=True)
    return torch.load(path, map_location=map_location, weights_only=True)


def _package_member(zf: zipfile.ZipFile, names: list[str], path: Path) -> bytes:
    if not {"rdf.yaml", "bioimageio.yaml"} & set(names):
        raise _not_a_model(path, "it is a zip file but not a BioImage Model Zoo package; a "
                                 "package written by export_bioimageio() loads too")
    attached = sorted((n for n in names if n.endswith(SUFFIX)), key=lambda n: n != "model" + SUFFIX)
    if not attached:
        raise CheckpointError(
            f"{path} is a BioImage Model Zoo package not exported by napari-gr2r (it has no "
            f"{SUFFIX} model attached). Run it with the zoo's tools (bioimageio.core, "
            "deepImageJ), or train a napari-gr2r model on your images."
        )
    return zf.read(attached[0])


def _format_version(payload: dict[str, Any], source: str) -> int:
    value = payload.get("format_version", 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value != int(value):
        raise CheckpointError(
            f"{source} has a format version {value!r} that is not a whole number: it is damaged "
            "or was not written by napari-gr2r. Train the model again."
        )
    return int(value)


def check_model_values(model: GR2RModel, source: str = "the model") -> None:
    """Raise :class:`CheckpointError` for NaN or infinite weights, a degenerate normalisation
    or a non-finite noise level: such a model would denoise every image into NaN."""
    bad = [name for name, t in model.net.state_dict().items()
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise CheckpointError(
            f"{source} has NaN or infinite weights ({', '.join(bad[:3])}"
            f"{', ...' if len(bad) > 3 else ''}), from a training run that diverged; train it "
            "again (a lower learning rate may help) or use an earlier copy."
        )
    try:
        model.normalization.check(f"The normalisation in {source}")
    except InputError as exc:
        raise CheckpointError(f"{exc} Train the model again.") from None
    level = model.noise_level
    try:
        values = [float(v) for v in (*level.a, *level.b, *level.typical)]
    except (TypeError, ValueError):
        values = [math.nan]
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise CheckpointError(
            f"The noise level in {source} is not a set of finite, non-negative numbers; train "
            "the model again."
        )


def _check_layout(payload: dict[str, Any], source: str) -> None:
    """The axes, channels and dims a model file records must make sense together."""
    axes, channels, dims = (payload.get(k) for k in ("axes", "channels", "dims"))
    if not isinstance(axes, str) or not axes or set(axes) - set(AXIS_LETTERS) or \
            isinstance(channels, bool) or not isinstance(channels, int) or \
            not 1 <= channels <= MAX_CHANNELS or dims not in (2, 3):
        raise CheckpointError(
            f"{source} records axes {axes!r}, {channels!r} channel(s) and a {dims!r}D network, "
            "which do not fit together: the file is damaged or was not written by napari-gr2r. "
            "Train the model again."
        )


def _run_record(payload: dict[str, Any], source: str) -> RunRecord:
    training = payload.get("training")
    return RunRecord(
        step=payload["step"], history=list(payload.get("history", [])),
        optimizer_state=payload.get("optimizer"),
        best_step=payload.get("best_step", payload["step"]),
        best_val_loss=payload.get("best_val_loss"),
        unfinished=None if training is None else RunState.from_dict(training, source),
    )


def model_from_dict(payload: Any, source: str = "the model") -> GR2RModel:
    """Rebuild a :class:`GR2RModel` from :func:`model_to_dict`'s content (checked)."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{source} is not a napari-gr2r model file (it may be a checkpoint of another "
            "program); give a file written by 'napari-gr2r train' or engine.save_model()."
        )
    if _format_version(payload, source) > FORMAT_VERSION:
        raise CheckpointError(
            f"{source} was written by a newer napari-gr2r "
            f"({payload.get('versions', {}).get('napari_gr2r', '?')}); upgrade napari-gr2r."
        )
    _check_layout(payload, source)
    try:
        config = TrainConfig.from_dict(payload["config"])
        net = build_network(payload["dims"], payload["channels"], config.width, config.depth,
                            config.residual, config.context, config.members)
        net.load_state_dict(payload["state_dict"])
        net.eval()
        model = GR2RModel(
            net=net, config=config, axes=payload["axes"], channels=payload["channels"],
            dims=payload["dims"], normalization=Normalization(**payload["normalization"]),
            noise_level=NoiseLevel(**payload["noise_level"]),
            data_shape=None if payload.get("data_shape") is None else
            tuple(int(n) for n in payload["data_shape"]),
            run=_run_record(payload, source),
        )
    except (KeyError, TypeError, RuntimeError, ValueError, AttributeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{source} is incomplete or inconsistent ({detail}); train the "
                              "model again or use another copy.") from None
    check_model_values(model, source)
    return model
