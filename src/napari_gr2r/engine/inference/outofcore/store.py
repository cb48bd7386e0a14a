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

from ...errors import InputError, OutputError
from ...io.omezarr import LEVEL, create_result, open_result
from ...io.outputs import in_use_message
from ...io.sources import is_url
from ...model.model import GR2RModel
from .plan import BlockGrid

STATE_KEY = "napari_gr2r"
STATE_VERSION = 1


@dataclass(frozen=True)
class ChunkProgress:
    """Progress of an out-of-core run: ``done`` of ``total`` blocks, ``written`` in this call.

    ``warning``, on the first step only: why the result may be wrong (the image's values lie
    mostly outside the model's training range), else None. An event rather than a Python
    warning, so that whoever consumes the generator (the widget's worker, a run over many
    files) shows it beside the result it concerns.
    """

    done: int
    total: int
    written: int
    skipped: int
    warning: str | None = None
    hot_pixels: int = 0
    """On the last step of a run on this machine: the isolated hot or dead pixels replaced
    (:mod:`napari_gr2r.engine.io.hotpixels`) in the blocks it denoised."""
    levels: int = 0
    """On a last step of its own: the lower-resolution levels the finished result has
    (:mod:`napari_gr2r.engine.io.pyramid`; a large plane's OME-Zarr result only)."""
    levels_pending: int = 0
    """On a step of its own before they are written: how many levels are about to be."""


def existing_array(location: str) -> Any | None:
    """The result array at ``location`` (a zarr array, or the level of an OME-Zarr result:
    :func:`~napari_gr2r.engine.io.omezarr.open_result`); None when nothing is there; raises
    for other things."""
    if not is_url(location) and not Path(location).exists():
        return None
    try:
        arr = open_result(location, mode="r+")
    except Exception:  # zarr raises several unrelated types for "not an array"
        arr = None
        if is_url(location):
            return None
    if arr is None:
        raise InputError(
            f"{location} exists and is neither a zarr array nor a result of napari-gr2r; "
            "napari-gr2r writes its result only to a new path or over one of those. Choose "
            "another output path."
        ) from None
    if getattr(arr, "path", "") == LEVEL and read_state(arr) is None:  # someone's OME-Zarr
        raise InputError(
            f"{location} is an OME-Zarr image that napari-gr2r did not write; replacing it "
            "would delete the whole store (its labels, tables, other images). Choose another "
            "output path."
        )
    return arr


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
    """What the output's attributes record about a (possibly interrupted) run, and which run
    owns the store now (see :class:`~napari_gr2r.engine.io.outputs.OutputClaim`)."""

    settings: dict[str, Any]
    done: np.ndarray
    owner: dict[str, Any] | None = None

    def to_attrs(self) -> dict[str, Any]:
        attrs = {**self.settings, "version": STATE_VERSION, "done": pack_done(self.done),
                 "blocks_done": int(self.done.sum()), "complete": bool(self.done.all())}
        if self.owner is not None:
            attrs["owner"] = dict(self.owner)
        return attrs


def read_state(out: Any) -> dict[str, Any] | None:
    """The denoising record of an output array, or None when it has none."""
    try:
        state = dict(out.attrs).get(STATE_KEY)
    except Exception:  # attributes that are not a JSON object: no record of ours
        return None
    return dict(state) if isinstance(state, dict) else None


def _fresh_state(out: Any) -> dict[str, Any] | None:
    """The record as stored now (another process may have changed it since ``out`` was
    opened, and zarr keeps the attributes it read)."""
    import zarr

    store, path = getattr(out, "store", None), getattr(out, "path", None)
    if store is None or type(store).__name__ == "MemoryStore":
        return read_state(out)
    try:
        return read_state(zarr.open_array(store=store, path=path or "", mode="r"))
    except Exception:  # the store is gone or unreadable: the write below will say so
        return read_state(out)


def check_owner(out: Any, state: RunState) -> None:
    """Raise :class:`OutputError` when another run has claimed ``out`` since this one did."""
    if state.owner is None:
        return
    current = _fresh_state(out) or {}
    owner = current.get("owner")
    if isinstance(owner, dict) and owner.get("token") != state.owner["token"]:
        raise OutputError(in_use_message(getattr(out, "store", out), owner)
                          + " Its blocks are left to it; nothing more was written by this run.")


def write_state(out: Any, state: RunState) -> None:
    """Record ``state`` in ``out``'s attributes, after checking this run still owns it."""
    check_owner(out, state)
    out.attrs[STATE_KEY] = state.to_attrs()


IDENTITY = ("model", "input")
"""What a result is of: the model's and the input's fingerprints (see
:func:`model_fingerprint` and :func:`~napari_gr2r.engine.io.sources.input_fingerprint`)."""
LAYOUT = ("axes", "shape", "block", "halo")


def other_result(previous: dict[str, Any], settings: dict[str, Any]) -> str | None:
    """What the recorded run ``previous`` is a result of, when it is not the run ``settings``
    describes (another model, another image or other settings), else None."""
    if previous.get("model") != settings["model"]:
        return "a (partial) result of another model"
    if previous.get("input") != settings["input"]:
        source = previous.get("source")
        of = f" ({source})" if isinstance(source, str) and source else ""
        if previous.get("input") is None:
            return "a (partial) result that does not record its input"
        return f"a (partial) result of another image{of}"
    mismatch = [k for k in LAYOUT if previous.get(k) != settings[k]]
    if previous.get("views", 1) != settings.get("views", 1):  # test-time flips (1: none)
        mismatch.append("views")
    if mismatch or previous.get("version") != STATE_VERSION:
        return f"a (partial) result written with other settings ({', '.join(mismatch)})"
    return None


def resume_state(arr: Any, settings: dict[str, Any], total: int, overwrite: bool,
                 owner: dict[str, Any] | None = None) -> RunState:
    """The run's record: the blocks an earlier run with the same settings finished, if any.

    Raises :class:`InputError` when ``arr`` holds a result of another model, of another input
    or of other settings (unless ``overwrite``): a store is only ever resumed, or reported
    complete, for the input and model it is the result of. The record, with ``owner``, is written to ``arr``
    before it is returned.
    """
    previous = read_state(arr)
    done = np.zeros(total, bool)
    if previous is not None and not overwrite:
        reason = other_result(previous, settings)
        if reason is not None:
            raise InputError(f"The output store holds {reason}; choose another output, or pass "
                             "overwrite=True to replace it.")
        done = unpack_done(previous["done"], total)
    state = RunState(settings, done, owner)
    arr.attrs[STATE_KEY] = state.to_attrs()  # the claim: from now on checked before writes
    return state


# --------------------------------------------------------------------------------------------
# the output store


def open_output(out: Any, axes: str, shape: tuple[int, ...], chunks: tuple[int, ...],
                overwrite: bool) -> tuple[Any, bool]:
    """The output zarr array and whether its chunking is given (an existing array). A new
    output at a path is an OME-Zarr image where its axes allow
    (:func:`~napari_gr2r.engine.io.omezarr.create_result`).

    The caller has checked that ``out`` does not overlap the input and claimed it.
    """
    if isinstance(out, (str, os.PathLike)):
        location = os.fspath(out)
        arr = existing_array(location)  # raises for anything but a zarr array
        if arr is not None and not overwrite:
            if read_state(arr) is None:
                raise InputError(
                    f"{location} is an existing zarr array that napari-gr2r did not write; "
                    "choose another output path (or pass overwrite=True to replace it)."
                )
            return arr, True
        return create_result(location, axes, shape, chunks), False
    if not hasattr(out, "attrs") or not hasattr(out, "chunks") or not hasattr(out, "__setitem__"):
        raise InputError(
            f"out= must be a path or a writable zarr array, not {type(out).__name__}."
        )
    if getattr(out, "read_only", False):
        raise OutputError(
            "out= is a zarr array opened read-only; open it with mode='r+' (or pass a path)."
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
