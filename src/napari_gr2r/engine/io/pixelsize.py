"""Pixel sizes (and axes) from image metadata, so that they carry over into results.

Where they are looked for, in order: napari-gr2r's own JSON description in a TIFF, OME-XML
(OME-TIFF), ImageJ's metadata and the TIFF resolution tags (per centimetre only), and an
OME-Zarr image's coordinate transformations. A scale is one value per axis of the array (1 for
the axes that are neither spatial nor time), with one unit for the spatial axes (``unit``) and,
where the time between frames is known, the time axis' unit (``time_unit``: ``T``'s scale is
then that interval).
"""

from __future__ import annotations

import json
import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError


class _Complaints(logging.Handler):
    """Collects what tifffile logs while it reads a file's pages (it logs, rather than
    raises, when a page chain points past the end of the file)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def tifffile_quiet() -> Iterator[_Complaints]:
    """What tifffile logs while a file is read is collected here, not printed: the reader
    turns what matters into its own one-line errors."""
    logger = logging.getLogger("tifffile")
    complaints = _Complaints()
    logger.addHandler(complaints)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield complaints
    finally:
        logger.propagate = propagate
        logger.removeHandler(complaints)


_DAMAGE_WORDS = ("invalid page offset", "corrupted", "truncated", "beyond end of file")


def check_tiff(path: Path) -> None:
    """Raise :class:`InputError` for a TIFF that is cut short (its pages or pixels end past
    the end of the file: a lazy reader would only find out block by block, or would read
    fewer planes than the file holds) or that holds several images (series) or a
    description whose shape does not fit its pages."""
    import tifffile

    with tifffile_quiet() as complaints, tifffile.TiffFile(path) as tif:
        series = list(tif.series)
        _check_pixels_in_file(path, tif, series)
        _check_one_series(path, tif, series)
    damage = [m for m in complaints.messages if any(w in m.lower() for w in _DAMAGE_WORDS)]
    if damage:
        raise InputError(f"{path.name} cannot be read as a TIFF: it is damaged, the file ends "
                         "before its last image planes (a copy cut short?); copy it again from "
                         "the original.")


def _check_pixels_in_file(path: Path, tif: Any, series: list[Any]) -> None:
    size = tif.filehandle.size
    ends = []
    if series and series[0].dataoffset is not None:
        ends.append(series[0].dataoffset + series[0].nbytes)
    pages = series[0].pages if series else []
    for page in (pages[0], pages[-1]) if len(pages) else ():
        if page is not None and getattr(page, "dataoffsets", None):
            ends.append(max(o + c for o, c in zip(page.dataoffsets, page.databytecounts)))
    if ends and max(ends) > size:
        raise InputError(f"{path.name} cannot be read as a TIFF: it is damaged, the file ends at "
                         f"byte {size} but its pixels go on to byte {max(ends)} (a copy cut "
                         "short?); copy it again from the original.")


def _check_one_series(path: Path, tif: Any, series: list[Any]) -> None:
    if len(series) <= 1 or tif.is_lsm:  # an LSM file's second series is its thumbnails
        return
    shapes = ", ".join(str(tuple(s.shape)) for s in series[:4]) + (", ..." if len(series) > 4
                                                                   else "")
    raise InputError(
        f"{path.name} holds {len(series)} images (series: {shapes}); napari-gr2r reads one image "
        "per file and would denoise only the first. Save each image to its own file (Fiji: "
        "Bio-Formats, 'open all series', then save each) and give those."
    )


def clean_scale(meta: dict[str, Any], ndim: int) -> dict[str, Any]:
    """``meta`` without a scale that is not one finite, positive number per axis, and without
    a unit that is not a short text: bad metadata is dropped, never copied into a result."""
    meta = dict(meta)
    scale = meta.get("scale")
    if scale is not None:
        try:
            values = [float(v) for v in scale]
        except (TypeError, ValueError):
            values = []
        if len(values) == ndim and all(math.isfinite(v) and v > 0 for v in values):
            meta["scale"] = values
        else:
            meta.pop("scale")
            meta.pop("unit", None)
    unit = meta.get("unit")
    if unit is not None and not (isinstance(unit, str) and 0 < len(unit) <= 32):
        meta.pop("unit")
    if "time_unit" in meta:
        short = time_unit(meta["time_unit"]) if "scale" in meta else None
        if short is None:
            meta.pop("time_unit")
        else:
            meta["time_unit"] = short
    return meta


def tiff_metadata(path: Path, axes: str | None) -> dict[str, Any]:
    """Axes, scale and unit: napari-gr2r's JSON description (its own tag, else the
    ImageDescription), else OME-XML, else ImageJ."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        ours = page.tags.get(DESCRIPTION_TAG)
        description = ours.value if ours is not None and isinstance(ours.value, str) else \
            page.description or ""
        if description.startswith("{"):
            try:
                info = json.loads(description)
            except ValueError:
                info = None
            # tifffile's own JSON description holds only the shape: not ours
            if isinstance(info, dict) and ("axes" in info or "scale" in info):
                meta = {key: info[key] for key in ("scale", "unit", "time_unit", "shape")
                        if key in info}
                if isinstance(info.get("axes"), str):
                    meta["axes"] = info["axes"].upper()
                return meta
        if axes is None:
            return {}
        if tif.is_ome and tif.ome_metadata:
            return _ome_xml_scale(tif.ome_metadata, axes)
        return _resolution_scale(tif.imagej_metadata or {} if tif.is_imagej else {}, page,
                                 axes)


def _ome_xml_scale(xml: str, axes: str) -> dict[str, Any]:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return {}
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return {}
    sizes, unit = {}, None
    for letter in "ZYX":
        value = pixels.get(f"PhysicalSize{letter}")
        if value is not None:
            try:
                sizes[letter] = float(value)
            except ValueError:  # not a number: no pixel size rather than a wrong one
                return {}
            unit = unit or pixels.get(f"PhysicalSize{letter}Unit", "µm")
    meta: dict[str, Any] = {"unit": unit} if sizes else {}
    interval = _positive(pixels.get("TimeIncrement"))
    seconds = time_unit(pixels.get("TimeIncrementUnit", "s"))
    if interval is not None and seconds is not None and "T" in axes:
        sizes["T"] = interval
        meta["time_unit"] = seconds
    if not sizes:
        return {}
    meta["scale"] = [sizes.get(a, 1.0) for a in axes]
    return meta


def _positive(value: Any) -> float | None:
    """``value`` as a finite positive number, or None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


_UM_PER_CM = 10_000.0


def _resolution_scale(imagej: dict[str, Any], page: Any, axes: str) -> dict[str, Any]:
    """Pixel size from the X/Y resolution tags (and ImageJ's Z spacing and unit).

    Without ImageJ's unit only a resolution per centimetre counts: a resolution per inch
    (the TIFF default) is nearly always a printing density (72 or 300 dpi), not a pixel size.
    """
    sizes = {}
    unit_tag = page.tags.get("ResolutionUnit")
    resunit = int(unit_tag.value) if unit_tag is not None else 2
    for letter in "XY":
        tag = page.tags.get(f"{letter}Resolution")
        if tag is not None:
            num, den = tag.value
            if num and den and num != den:  # 1/1 is the default, not a calibration
                sizes[letter] = den / num
    if "spacing" in imagej:
        sizes["Z"] = float(imagej["spacing"])
    meta: dict[str, Any] = {}
    if sizes and imagej.get("unit"):
        unit = str(imagej["unit"]).replace("\\u00B5", "µ")
        meta["unit"] = length_unit(unit) or unit
    elif sizes and resunit == 3:  # centimetre
        sizes = {a: v * _UM_PER_CM if a in "XY" else v for a, v in sizes.items()}
        meta["unit"] = "µm"
    else:
        sizes = {}
    interval = _positive(imagej.get("finterval"))
    seconds = time_unit(imagej.get("tunit") or "s")  # ImageJ's default unit: seconds
    if interval is not None and seconds is not None and "T" in axes:
        sizes["T"] = interval
        meta["time_unit"] = seconds
    if not sizes:
        return {}
    meta["scale"] = [sizes.get(a, 1.0) for a in axes]
    return meta


def ome_zarr_scale(location: str, ndim: int) -> dict[str, Any]:
    """The full-resolution level's scale (times a multiscale-wide one) and the space unit."""
    import zarr

    try:
        node = zarr.open(store=location, mode="r")
    except Exception:  # not a group: nothing more to read
        return {}
    if isinstance(node, zarr.Array):
        return {}
    try:
        attrs = dict(node.attrs)
    except Exception:  # attributes that are not a JSON object
        return {}
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if not multiscales:
        return {}
    image = multiscales[0]
    scale = np.ones(ndim)
    transforms = list(image["datasets"][0].get("coordinateTransformations", []))
    transforms += list(image.get("coordinateTransformations", []))
    for transform in transforms:
        if not isinstance(transform, dict) or transform.get("type") != "scale":
            continue
        try:
            values = np.asarray(transform.get("scale", []), float)
        except (TypeError, ValueError):
            return {}
        if values.shape == (ndim,):
            scale = scale * values
    axes = [a for a in image.get("axes", []) if isinstance(a, dict)]
    times = [a.get("unit") for a in axes if a.get("type") == "time" and a.get("unit")]
    if np.all(scale == 1) and not times:
        return {}
    meta: dict[str, Any] = {"scale": [float(s) for s in scale]}
    units = [a.get("unit") for a in axes if a.get("type") == "space" and a.get("unit")]
    if units:  # OME-Zarr names lengths as UDUNITS-2 does (micrometer): here, as TIFF does (µm)
        unit = str(units[-1])
        meta["unit"] = length_unit(unit) or unit
    if times:
        meta["time_unit"] = str(times[0])
    return meta


LENGTHS = {"µm": ("micrometer", 1e-4), "nm": ("nanometer", 1e-7), "mm": ("millimeter", 0.1),
           "cm": ("centimeter", 1.0), "m": ("meter", 100.0), "Å": ("angstrom", 1e-8),
           "pm": ("picometer", 1e-10)}
"""The length units napari-gr2r writes, as its metadata spells them: their OME-Zarr (UDUNITS-2)
name and their size in centimetres (TIFF's metric resolution unit)."""

_SPELLINGS = {"um": "µm", "micron": "µm", "microns": "µm", "\\u00B5m": "µm", "\u03bcm": "µm",
              **{name: short for short, (name, _) in LENGTHS.items()}}


TIMES = {"s": "second", "ms": "millisecond", "µs": "microsecond", "min": "minute", "h": "hour"}
"""The time units napari-gr2r writes, as its metadata (and OME-XML) spells them, and their
OME-Zarr (UDUNITS-2) names."""

_TIME_SPELLINGS = {"sec": "s", "secs": "s", "seconds": "s", "msec": "ms", "milliseconds": "ms",
                   "us": "µs", "\u03bcs": "µs", "microseconds": "µs", "mins": "min",
                   "minutes": "min", "hr": "h", "hrs": "h", "hours": "h",
                   **{name: short for short, name in TIMES.items()}}


def time_unit(unit: Any) -> str | None:
    """A time unit as napari-gr2r's metadata spells it (ImageJ's ``sec``, OME-Zarr's ``second``
    and napari's are ``s``), or None for anything that is not a time it knows."""
    text = str(unit).strip() if unit is not None else ""
    text = _TIME_SPELLINGS.get(text, _TIME_SPELLINGS.get(text.lower(), text))
    return text if text in TIMES else None


def length_unit(unit: Any) -> str | None:
    """A length unit as napari-gr2r's metadata spells it (``micron``, ``um`` and OME-Zarr's
    ``micrometer`` are ``µm``), or None for anything that is not a length it knows."""
    text = str(unit).strip() if unit is not None else ""
    text = _SPELLINGS.get(text, _SPELLINGS.get(text.lower(), text))
    return text if text in LENGTHS else None

DESCRIPTION_TAG = 65001
"""A private TIFF tag holding napari-gr2r's JSON description (axes, shape, scale, unit) where the
ImageDescription holds ImageJ's."""

IMAGEJ_ORDER = "TZCYX"
IMAGEJ_BYTES = 2**32 - 2**26
"""ImageJ reads hyperstacks from classic TIFFs only (under 4 GiB)."""



def samples_as_time(axes: str) -> str:
    """``axes`` with a sample axis (independent images) as time where there is no time axis:
    how the OME and ImageJ layouts, which have no sample axis, hold one."""
    return axes.replace("S", "T") if "T" not in axes else axes


def plain_tiff_layout(axes: str, nbytes: int, description: dict[str, Any]) -> dict[str, Any]:
    """tifffile's keyword arguments for a result in a plain (not OME) TIFF, so that Fiji and
    other readers see its pixel size, not only napari-gr2r.

    Axes in ImageJ's order (``TZCYX``, any of them; a sample axis ``S`` as frames where there is
    no ``T``) and under 4 GiB: an ImageJ hyperstack, with its frames, slices, channels, pixel
    size, Z spacing and unit; the JSON description that
    :func:`tiff_metadata` reads first goes into :data:`DESCRIPTION_TAG`. Otherwise the JSON is the
    ImageDescription and the pixel size of a length unit is in the resolution tags, per
    centimetre (the only metric unit TIFF has).
    """
    scale, unit = description.get("scale"), description.get("unit")
    size = dict(zip(axes, scale)) if scale is not None else {}
    short = length_unit(unit)
    cm = LENGTHS[short][1] if size and short is not None else None
    text = json.dumps(description)
    letters = samples_as_time(axes)
    in_order = [IMAGEJ_ORDER.find(a) for a in letters]
    if letters.endswith("YX") and -1 not in in_order and in_order == sorted(in_order) \
            and nbytes < IMAGEJ_BYTES:
        metadata: dict[str, Any] = {"axes": letters}
        kwargs: dict[str, Any] = {"imagej": True, "metadata": metadata,
                                  "extratags": [(DESCRIPTION_TAG, "s", 0, text, True)]}
        if cm is not None:
            metadata["unit"] = "micron" if short == "µm" else short
            kwargs["resolution"] = (1 / size["X"], 1 / size["Y"])
            if "Z" in size:
                metadata["spacing"] = size["Z"]
        seconds = time_unit(description.get("time_unit"))
        if seconds is not None and "T" in size:  # a real time axis, not samples as frames
            metadata["finterval"] = size["T"]
            if seconds != "s":  # ImageJ's default unit
                metadata["tunit"] = "us" if seconds == "µs" else seconds
        return kwargs
    kwargs = {"description": text, "metadata": None, "extratags": []}
    if cm is not None:
        kwargs["resolution"] = (1 / (size["X"] * cm), 1 / (size["Y"] * cm))
        kwargs["resolutionunit"] = 3  # centimetre
    return kwargs
