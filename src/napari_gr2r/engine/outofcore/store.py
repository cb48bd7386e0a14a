"""The output zarr store's bookkeeping: opening it, the model's fingerprint, done-marks.

A block is marked done in the output array's attributes (under :data:`STATE_KEY`) only
after its chunks are written, so an interrupted run can be resumed from the record.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..model import GR2RModel
from ..sources import is_url
from .plan import BlockGrid

STATE_KEY = "napari_gr2r"
STATE_VERSION = 1


@dataclass(frozen=True)
class ChunkProgress:
    """Progress of an out-of-core run: ``done`` of ``total`` blocks, ``written`` in this call."""

    done: int
    total: int
    written: int
    skipped: int


def same_location(a: str, b: str) -> bool:
    """Whether two paths (or URLs) name the same store."""
    if is_url(a) or is_url(b):
        return a.rstrip("/") == b.rstrip("/")
    return Path(a).resolve() == Path(b).resolve()


def existing_array(location: str) -> Any | None:
    """The zarr array at ``location``; None when nothing is there; raises for other things."""
    import zarr

    if not is_url(location) and not Path(location).exists():
        return None
    try:
        return zarr.open_array(store=location, mode="r+")
    except Exception:  # zarr raises several unrelated types for "not an array"
        if is_url(location):
            return None
        raise InputError(
            f"{location} exists and is not a zarr array; napari-gr2r writes its result only to "
            "a new path or over a zarr array. Choose another output path."
        ) from None


# --------------------------------------------------------------------------------------------
# resumable state in the output's attributes


def model_fingerprint(model: GR2RModel) -> str:
    """A digest of the weights, normalisation and network shape: which model wrote a store."""
    digest = hashlib.sha256()
    digest.update(repr((model.dims, model.channels, model.config.width, model.config.depth,
                        model.normalization.low, model.normalization.high)).encode())
    for name, tensor in sorted(model.net.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def pack_done(done: np.ndarray) -> str:
    return base64.b64encode(np.packbits(done).tobytes()).decode("ascii")


def unpack_done(text: str, n: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(base64.b64decode(text), np.uint8))
    return bits[:n].astype(bool)


@dataclass
class RunState:
    """What the output's attributes record about a (possibly interrupted) run."""

    settings: dict[str, Any]
    done: np.ndarray

    def to_attrs(self) -> dict[str, Any]:
        return {**self.settings, "version": STATE_VERSION, "done": pack_done(self.done),
                "blocks_done": int(self.done.sum()), "complete": bool(self.done.all())}


def read_state(out: Any) -> dict[str, Any] | None:
    """The denoising record of an output array, or None when it has none."""
    state = dict(out.attrs).get(STATE_KEY)
    return dict(state) if isinstance(state, dict) else None


def write_state(out: Any, state: RunState) -> None:
    out.attrs[STATE_KEY] = state.to_attrs()


def resume_state(arr: Any, settings: dict[str, Any], total: int, overwrite: bool) -> RunState:
    """The run's record: the blocks an earlier run with the same settings finished, if any.

    Raises :class:`InputError` when ``arr`` holds a result of another model or of other
    settings (unless ``overwrite``). The record is written to ``arr`` before it is returned.
    """
    previous = read_state(arr)
    done = np.zeros(total, bool)
    if previous is not None and not overwrite:
        mismatch = [k for k in ("axes", "shape", "block", "halo") if previous.get(k) != settings[k]]
        if previous.get("model") != settings["model"]:
            raise InputError(
                "The output store holds a (partial) result of another model; choose another "
                "output, or pass overwrite=True to denoise it again with this model."
            )
        if mismatch or previous.get("version") != STATE_VERSION:
            raise InputError(
                f"The output store was written with other settings ({', '.join(mismatch)}); "
                "choose another output, or pass overwrite=True to start again."
            )
        done = unpack_done(previous["done"], total)
    state = RunState(settings, done)
    write_state(arr, state)
    return state


# --------------------------------------------------------------------------------------------
# the output store


def open_output(out: Any, shape: tuple[int, ...], chunks: tuple[int, ...], overwrite: bool,
                source_path: str | None) -> tuple[Any, bool]:
    """The output zarr array and whether its chunking is given (an existing array)."""
    import zarr

    if isinstance(out, (str, os.PathLike)):
        location = os.fspath(out)
        if source_path is not None and same_location(location, source_path):
            raise InputError(f"The output {location} is the input; choose another output path.")
        arr = existing_array(location)  # raises for anything but a zarr array
        if arr is not None and not overwrite:
            if read_state(arr) is None:
                raise InputError(
                    f"{location} is an existing zarr array that napari-gr2r did not write; "
                    "choose another output path (or pass overwrite=True to replace it)."
                )
            return arr, True
        arr = zarr.create_array(store=location, shape=shape, chunks=chunks, dtype="float32",
                                fill_value=0.0, overwrite=True)
        return arr, False
    if not hasattr(out, "attrs") or not hasattr(out, "chunks") or not hasattr(out, "__setitem__"):
        raise InputError(
            f"out= must be a path or a writable zarr array, not {type(out).__name__}."
        )
    if tuple(out.shape) != tuple(shape):
        raise InputError(
            f"The output array has shape {tuple(out.shape)} but the image has shape {shape}; "
            "they must match."
        )
    if np.dtype(out.dtype).kind != "f":
        raise InputError(
            f"The output array has dtype {out.dtype}; denoised images are floating point, so "
            "create it with dtype float32."
        )
    return out, True


def default_out_chunks(grid: BlockGrid) -> tuple[int, ...]:
    """Chunks of a new output, in the input's axes: one block each, all channels together."""
    info = grid.info
    sizes = dict(zip("ZYX", grid.block))
    return tuple(1 if a in "TS" else info.n_channels if a == "C" else sizes[a]
                 for a in info.axes)
