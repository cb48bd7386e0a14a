"""Which letter each dimension of a layer gets: what napari and the file say, else a guess.

:func:`axes_guess` reads, in order, the layer's ``axis_labels`` (when they name axes), the
reader's metadata (an ``axes`` entry, as OME and ImageJ readers give), then the shape and the
units of the layer's ``scale``: a small dimension (2 to 4) before Y and X is taken for channels,
a dimension with a time unit for T, one with a length unit for Z. What comes from labels or
metadata is *known*; what comes from the shape is a *guess*, shown as one with the other
readings one click away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from napari_gr2r import engine
from napari_gr2r.engine.io.pixelsize import length_unit, time_unit

from ._layers import data_shape

LABEL_LETTERS = {
    "t": "T", "time": "T", "frame": "T", "frames": "T",
    "s": "S", "sample": "S", "p": "S", "position": "S",
    "c": "C", "ch": "C", "channel": "C", "channels": "C",
    "z": "Z", "y": "Y", "x": "X",
}

LETTER_MEANINGS = {
    "T": "time points (or separate images): each is denoised on its own, all train one model",
    "S": "separate samples or positions: like T",
    "C": "channels: denoised together, as one image with several colours",
    "Z": "depth: planes of one volume (a 3D network can use the planes around each one)",
    "Y": "image rows",
    "X": "image columns",
}

SMALL_CHANNELS = range(2, 5)


@dataclass
class AxesGuess:
    """The axes of a layer and where they come from."""

    axes: str
    source: str
    """Where they come from, in words: ``"the layer's axis labels"``, ``"the file"``, …"""
    known: bool
    """True when napari or the file said so; False for a guess from the shape."""
    alternatives: list[str] = field(default_factory=list)
    """Other readings of the same shape, the likeliest first."""
    lost_scale: bool = False
    """The file the layer was opened from has a pixel size the layer lacks (the reader that
    opened it, napari's own for one, kept the pixels only)."""


def letter_help(axes: str, shape: tuple[int, ...]) -> str:
    """One line per letter of ``axes``: its size and what it means (a tooltip)."""
    return "\n".join(f"{a} ({n}): {LETTER_MEANINGS.get(a, 'unknown letter')}"
                     for a, n in zip(axes, shape))


def _valid(axes: str, shape: tuple[int, ...]) -> bool:
    try:
        engine.parse_axes(axes, shape)
    except engine.GR2RError:
        return False
    return True


def _from_labels(layer: Any, shape: tuple[int, ...], rgb: bool) -> str | None:
    labels = [str(a).strip().lower() for a in getattr(layer, "axis_labels", ())]
    letters = "".join(LABEL_LETTERS.get(a, "?") for a in labels) + ("C" if rgb else "")
    return letters if "?" not in letters and _valid(letters, shape) else None


def _from_metadata(layer: Any, shape: tuple[int, ...]) -> str | None:
    metadata = getattr(layer, "metadata", None) or {}
    for key in ("axes", "dims", "dimension_order"):
        value = metadata.get(key)
        if isinstance(value, str):
            letters = value.strip().upper()
            if len(letters) == len(shape) and _valid(letters, shape):
                return letters
    return None


def _source_file(layer: Any, shape: tuple[int, ...]) -> dict[str, Any] | None:
    """What the TIFF or zarr store the layer was opened from says (axes, scale), where another
    reader than napari-gr2r's opened it whole; None otherwise. Reads the file's metadata only."""
    from napari_gr2r._reader import get_reader
    from napari_gr2r.engine.io.sources import is_url

    source = getattr(layer, "source", None)
    path = getattr(source, "path", None)
    if not path or getattr(source, "reader_plugin", None) == "napari-gr2r" or \
            get_reader(str(path)) is None or is_url(str(path)):  # no network on Qt's thread
        return None
    try:
        data, meta = engine.read_image(path)
    except (engine.GR2RError, OSError):
        return None
    return meta if tuple(data.shape) == tuple(shape) else None


def _unit_kind(layer: Any, dim: int) -> str:
    """``"time"``, ``"length"`` or ``""`` for the unit of a layer dimension."""
    units = getattr(layer, "units", None)
    if units is None or dim >= len(units):
        return ""
    unit = str(units[dim]).strip().lower()
    if time_unit(unit) is not None:
        return "time"
    return "length" if length_unit(unit) is not None else ""


def _from_shape(layer: Any, shape: tuple[int, ...], rgb: bool) -> list[str]:
    """Readings of the shape, the likeliest first (Y and X last, colours after them for RGB)."""
    lead = shape[:-3] if rgb else shape[:-2]
    tail = "YXC" if rgb else "YX"
    readings: list[str] = []

    def add(letters: str) -> None:
        full = letters + tail
        if full not in readings and _valid(full, shape):
            readings.append(full)

    kinds = [_unit_kind(layer, i) for i in range(len(lead))]
    small = [i for i, n in enumerate(lead) if n in SMALL_CHANNELS and not rgb]
    first = []
    for i in range(len(lead)):
        if kinds[i] == "time":
            first.append("T")
        elif i in small[-1:] and kinds[i] != "length":
            first.append("C")
        else:
            first.append("?")
    spare = [i for i, c in enumerate(first) if c == "?"]
    for fill in (("Z", "T"), ("T", "Z")):  # the last spare dimension Z, an earlier one T
        letters = list(first)
        for k, i in enumerate(reversed(spare)):
            letters[i] = fill[0] if k == 0 else fill[1]
        add("".join(letters))
    for guess in ("C", "T", "Z", "TC", "TZ", "CZ", "ZC", "TCZ", "TZC"):
        if len(guess) == len(lead):
            add(guess)
    add(engine.guess_axes(shape, rgb=rgb)[: len(lead)])
    return readings or [engine.guess_axes(shape, rgb=rgb)]


def axes_guess(layer: Any) -> AxesGuess:
    """The axes of ``layer``: known from its labels or its file, else guessed from the shape."""
    shape = data_shape(layer)
    rgb = bool(getattr(layer, "rgb", False))
    readings = _from_shape(layer, shape, rgb)
    file = _source_file(layer, shape) or {}
    lost = any(float(s) != 1 for s in file.get("scale") or ()) and \
        all(float(s) == 1 for s in getattr(layer, "scale", ()))
    named = file.get("axes") if _valid(file.get("axes") or "", shape) and not rgb else None
    for source, found in (("the layer's axis labels", _from_labels(layer, shape, rgb)),
                          ("the file", _from_metadata(layer, shape)),
                          ("the file it was opened from", named)):
        if found is not None:
            return AxesGuess(found, source, True, [r for r in readings if r != found][:3],
                             lost_scale=lost)
    source = "the shape" if len(shape) > 2 + rgb else "the shape (a single plane)"
    lead = len(shape) - (3 if rgb else 2)
    if readings[0] != engine.guess_axes(shape, rgb=rgb) and \
            any(_unit_kind(layer, i) for i in range(lead)):  # the units chose the reading
        source = "the shape and the units (seconds or minutes make T, lengths Z)"
    return AxesGuess(readings[0], source, len(shape) == 2 + rgb, readings[1:4], lost_scale=lost)
