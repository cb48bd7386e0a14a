"""Pixel sizes (and axes) from image metadata, so that they carry over into results.

Where they are looked for, in order: napari-gr2r's own JSON description in a TIFF, OME-XML
(OME-TIFF), ImageJ's metadata and the TIFF resolution tags (per centimetre only), and an
OME-Zarr image's coordinate transformations. A scale is one value per axis of the array (1 for
the axes that are not spatial), with one unit for the spatial axes.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np


def check_not_truncated(path: Path) -> None:
    """Raise when the pixels of the first or last page lie past the end of the file (a copy
    cut short), which a lazy reader would only find block by block."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        size = tif.filehandle.size
        pages = tif.series[0].pages if tif.series else []
        for page in (pages[0], pages[-1]) if len(pages) else ():
            if page is None or not getattr(page, "dataoffsets", None):
                continue
            end = max(o + c for o, c in zip(page.dataoffsets, page.databytecounts))
            if end > size:
                raise ValueError(f"the file ends at byte {size}, its pixels at byte {end}")


def tiff_metadata(path: Path, axes: str | None) -> dict[str, Any]:
    """Axes, scale and unit: napari-gr2r's JSON description, else OME-XML, else ImageJ."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        description = page.description or ""
        if description.startswith("{"):
            try:
                info = json.loads(description)
            except ValueError:
                info = None
            # tifffile's own JSON description holds only the shape: not ours
            if isinstance(info, dict) and ("axes" in info or "scale" in info):
                meta = {key: info[key] for key in ("scale", "unit", "shape") if key in info}
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
            sizes[letter] = float(value)
            unit = unit or pixels.get(f"PhysicalSize{letter}Unit", "µm")
    if not sizes:
        return {}
    return {"scale": [sizes.get(a, 1.0) for a in axes], "unit": unit or "µm"}


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
    if not sizes:
        return {}
    meta: dict[str, Any] = {}
    if imagej.get("unit"):
        unit = str(imagej["unit"]).replace("\\u00B5", "µ")
        meta["unit"] = "µm" if unit in ("micron", "um", "\\u00B5m") else unit
    elif resunit == 3:  # centimetre
        sizes = {a: v * _UM_PER_CM if a in "XY" else v for a, v in sizes.items()}
        meta["unit"] = "µm"
    else:
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
    attrs = dict(node.attrs)
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if not multiscales:
        return {}
    image = multiscales[0]
    scale = np.ones(ndim)
    transforms = list(image["datasets"][0].get("coordinateTransformations", []))
    transforms += list(image.get("coordinateTransformations", []))
    for transform in transforms:
        if transform.get("type") == "scale" and len(transform.get("scale", [])) == ndim:
            scale = scale * np.asarray(transform["scale"], float)
    if np.all(scale == 1):
        return {}
    meta: dict[str, Any] = {"scale": [float(s) for s in scale]}
    units = [a.get("unit") for a in image.get("axes", []) if isinstance(a, dict)
             and a.get("type") == "space" and a.get("unit")]
    if units:
        meta["unit"] = str(units[-1])
    return meta
