"""Which files a many-files run takes, and where their results go.

:func:`expand_inputs` turns files, folders and glob patterns into image paths;
:func:`output_path` names each result after its input; a result that would replace, lie
inside or hold its input is refused; a result already there (a whole TIFF, a complete zarr
store) counts as done.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError
from ..inference.outofcore.store import model_fingerprint, read_state
from ..io.formats import (
    is_image_candidate,
    is_zarr_store,
    read_image,
    read_result_of,
    special_file_reason,
    stem_of,
    suffix_of,
)
from ..io.omezarr import open_result
from ..io.provenance import input_fingerprint
from ..model.model import GR2RModel

PathLike = str | os.PathLike
OVERWRITES_INPUT = ("its result would overwrite it; choose another output folder or a suffix "
                    "for the results")
"""The reason given for a file whose result would be the file itself (see
:func:`~napari_gr2r.engine.io.outputs.overlap_message`)."""


def _has_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def expand_inputs(inputs: PathLike | Iterable[PathLike]) -> list[str]:
    """The image paths that ``inputs`` names, in order, each once.

    Each item is a file, a zarr store, a folder (its image files and zarr stores, sorted by
    name; hidden entries are left out) or a glob pattern (``raw/*.tif``, ``**`` recurses;
    its matches sorted). A path that does not exist and is not a pattern is kept, so that it
    is reported by name when it is processed; a pattern that matches nothing is an error.
    """
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    found: list[str] = []
    for position, item in enumerate(items):
        if not isinstance(item, (str, os.PathLike)):
            raise InputError(f"Input {position + 1} is {type(item).__name__}, not a path: give "
                             "file names, folders or glob patterns (str or pathlib.Path).")
        text = os.fspath(item)
        path = Path(text)
        if "://" in text:
            found.append(text)
        elif path.is_dir() and not is_zarr_store(path):
            found.extend(str(p) for p in sorted(path.iterdir()) if is_image_candidate(p))
        elif path.exists() or not _has_glob(text):
            found.append(text)
        else:
            matches = sorted(glob.glob(text, recursive=True))
            images = [m for m in matches if is_image_candidate(Path(m))]
            if not images:
                raise InputError(f"No image files match {text!r}.")
            found.extend(images)
    seen: set[str] = set()
    unique = []
    for text in found:
        key = text if "://" in text else str(Path(text).resolve())
        if key not in seen:
            seen.add(key)
            unique.append(text)
    return unique


def output_path(input_path: PathLike, out_dir: PathLike, suffix: str = "",
                out_format: str | None = None) -> Path:
    """Where the result of ``input_path`` goes: ``out_dir`` / its name (+ ``suffix``).

    A zarr input gives a ``.zarr`` result, a TIFF keeps its extension (``.ome.tif`` stays
    OME-TIFF), PNG and JPEG give ``.tif`` (results are float32). ``out_format`` ``"tif"`` or
    ``"zarr"`` chooses for every file.
    """
    location = os.fspath(input_path).rstrip("/")
    ext = suffix_of(location)
    if out_format not in (None, "tif", "tiff", "zarr"):
        raise InputError(f"Unknown output format {out_format!r}; use 'tif' or 'zarr'.")
    if out_format == "zarr" or (out_format is None and ext.endswith(".zarr")):
        new = ".zarr"
    elif out_format is None and ext.endswith((".tif", ".tiff")):
        new = ext
    else:
        new = ".ome.tif" if ext.startswith(".ome.") else ".tif"
    name = stem_of(location) if ext else Path(location).name
    return Path(out_dir) / f"{name}{suffix}{new}"


def unreadable_reason(path: str) -> str | None:
    """Why the input ``path`` is not even opened (a named pipe, socket or device), or None."""
    return special_file_reason(path)


def is_done(out: Path, kind: str, model: GR2RModel | None = None,
            path: str | None = None) -> bool:
    """Whether ``out`` already holds a finished result (of ``model`` and the input ``path``,
    when given): see :func:`result_in`."""
    done, _ = result_in(out, kind, model, path)
    return done


def result_in(out: Path, kind: str, model: GR2RModel | None = None,
              path: str | None = None, views: int = 1) -> tuple[bool, str | None]:
    """``(done, other)``: whether ``out`` holds the finished result of ``model`` on ``path``
    with ``views`` test-time flips, and, when it holds a result of another model, another
    image or other views, which (a reason for the user). A TIFF or store that records nothing
    (written otherwise) counts as done when it is whole; with no ``model``, any whole result
    counts."""
    recorded = _recorded(out, kind)
    if recorded is None:
        return False, None
    complete, record = recorded
    if not complete:
        return False, None  # an interrupted store: resumed (or refused) by the runner
    if model is None or path is None or not record.get("model"):
        return True, None
    if record.get("model") != model_fingerprint(model):
        return False, "its result there is of another model; overwrite to replace it"
    try:
        same = record.get("input") == input_fingerprint(read_image(path)[0])
    except Exception:  # an unreadable input is reported when it is processed
        return False, None
    if not same:
        return False, "its result there is of another image; overwrite to replace it"
    if record.get("views", 1) != views:  # recorded when more than one
        return False, (f"its result there is {_views_text(record.get('views', 1))}, not "
                       f"{_views_text(views)}; overwrite to replace it")
    return True, None


def _views_text(views: int) -> str:
    return "one pass of the network" if views == 1 else f"the mean of {views} flips and turns"


def _recorded(out: Path, kind: str) -> tuple[bool, dict] | None:
    """``(complete, record)`` of the result at ``out``, or None when there is none."""
    if kind == "tiff":
        return (True, read_result_of(out) or {}) if out.is_file() else None
    if not out.exists():
        return None
    try:
        state = read_state(open_result(out))
    except Exception:  # not a zarr store: iter_denoise_to_zarr says what is wrong
        return None
    if not state:
        return None
    return bool(state.get("complete")), state
