"""Zarr results as OME-Zarr images, so that any OME-Zarr reader sees their axes and pixel size.

A result written to a path is an OME-Zarr 0.5 image (a zarr v3 group with ``ome`` metadata,
the pixels in its array ``0``, the full resolution; a large one also has lower-resolution
levels ``1``, ``2``..., :mod:`.pyramid`) when its axes fit
OME-Zarr's order: time, then a channel or one other axis (a sample axis ``S``, independent
images), then two or three space axes ending in ``YX`` (``TCZYX`` and its subsets, ``SYX``).
Other orders (``YXC``, ``ZCYX``) have no OME-Zarr form without moving the pixels: such a
result is a plain zarr array, as every zarr result was before results became OME-Zarr images
(those are still read and resumed). Either way napari-gr2r's own record (axes, scale, unit,
and the resumable run's state, :mod:`napari_gr2r.engine.inference.outofcore.store`) is in
the array's attributes.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath
from typing import Any

from .pixelsize import LENGTHS, TIMES, clean_scale, length_unit

LEVEL = "0"
"""The name of the full-resolution array inside an OME-Zarr result."""

NGFF_VERSION = "0.5"

_AXES = {"T": ("t", "time"), "C": ("c", "channel"), "S": ("s", None),
         "Z": ("z", "space"), "Y": ("y", "space"), "X": ("x", "space")}
AXIS_NAMES = {letter: name for letter, (name, _) in _AXES.items()}
"""Each axis letter's name in OME-Zarr metadata and in the arrays' ``dimension_names``."""
_RANK = {"T": 0, "C": 1, "S": 1, "Z": 2, "Y": 2, "X": 2}


def fits_ome_zarr(axes: str) -> bool:
    """Whether an image with these axes can be an OME-Zarr image without reordering them."""
    ranks = [_RANK.get(a) for a in axes]
    if None in ranks or len(set(axes)) != len(axes) or ranks != sorted(ranks):
        return False
    return axes.endswith("YX") and ranks.count(1) <= 1 and 2 <= ranks.count(2) <= 3


def ome_metadata(axes: str, meta: dict[str, Any] | None, name: str,
                 levels: int = 1) -> dict[str, Any]:
    """The group's ``ome`` attribute: one multiscale image of ``levels`` levels (each after the
    first half the one before in Y and X), with its scale and (where it is a length
    napari-gr2r knows) the space axes' unit."""
    meta = clean_scale(meta or {}, len(axes))
    scale = list(meta.get("scale") or [1.0] * len(axes))
    short = length_unit(meta.get("unit")) if meta.get("scale") is not None else None
    unit = LENGTHS[short][0] if short is not None else None
    entries = []
    for i, letter in enumerate(axes):
        label, kind = _AXES[letter]
        entry: dict[str, Any] = {"name": label}
        if kind is not None:
            entry["type"] = kind
        if kind == "space" and unit is not None:
            entry["unit"] = unit
        if kind == "time" and meta.get("time_unit") in TIMES:
            entry["unit"] = TIMES[meta["time_unit"]]
        if kind != "space" and letter != "T":
            scale[i] = 1.0  # channels and samples are not a distance
        entries.append(entry)
    datasets = []
    for level in range(levels):
        factor = [2.0**level if a in "YX" else 1.0 for a in axes]
        transform = {"type": "scale", "scale": [float(s * f) for s, f in zip(scale, factor)]}
        datasets.append({"path": str(level), "coordinateTransformations": [transform]})
    return {"version": NGFF_VERSION,
            "multiscales": [{"name": name, "axes": entries, "datasets": datasets}]}


def create_result(location: str, axes: str, shape: tuple[int, ...], chunks: tuple[int, ...],
                  ) -> Any:
    """A new float32 result at ``location`` (replacing whatever zarr data is there): the array
    of an OME-Zarr image where the axes allow (:func:`fits_ome_zarr`), else a plain array."""
    import zarr

    if not fits_ome_zarr(axes):
        return zarr.create_array(store=location, shape=shape, chunks=chunks, dtype="float32",
                                 fill_value=0.0, overwrite=True)
    name = PurePosixPath(location.rstrip("/")).name or "denoised"
    group = zarr.open_group(store=location, mode="w", zarr_format=3,
                            attributes={"ome": ome_metadata(axes, None, name)})
    return group.create_array(LEVEL, shape=shape, chunks=chunks, dtype="float32",
                              fill_value=0.0, dimension_names=[AXIS_NAMES[a] for a in axes])


def open_result(location: str | os.PathLike, mode: str = "r") -> Any | None:
    """The result array of the store at ``location``: the store itself when it is an array,
    the full-resolution level ``0`` of an OME-Zarr image (napari-gr2r's results, and others
    whose first level is ``0``: :func:`~..inference.outofcore.store.existing_array` tells
    them apart); None for any other group. Raises what zarr raises where there is no store."""
    import zarr

    node = zarr.open(store=os.fspath(location), mode=mode)
    if isinstance(node, zarr.Array):
        return node
    level = node.get(LEVEL) if levels_listed(node) else None
    return level if isinstance(level, zarr.Array) else None


def levels_listed(group: Any) -> int:
    """How many levels a group's ``ome`` metadata lists, when it is an OME-Zarr image whose
    first level is ``0`` (as napari-gr2r writes them); else 0."""
    try:
        datasets = dict(group.attrs)["ome"]["multiscales"][0]["datasets"]
        return len(datasets) if datasets[0]["path"] == LEVEL else 0
    except (KeyError, IndexError, TypeError):
        return 0


def tag_result(arr: Any, axes: str, meta: dict[str, Any] | None) -> None:
    """Record axes, scale and unit in a result: in its array's attributes (what
    :func:`~napari_gr2r.engine.io.formats.read_image` reads first) and, for the array of an
    OME-Zarr image, in the image's scale and units."""
    attrs: dict[str, Any] = {"axes": axes}
    meta = clean_scale(meta or {}, len(axes))
    for key in ("scale", "unit", "time_unit"):
        if meta.get(key) is not None:
            attrs[key] = list(meta[key]) if key == "scale" else meta[key]
    arr.attrs.update(attrs)
    group = image_group(arr)
    if group is not None:
        name = group.attrs["ome"]["multiscales"][0].get("name", "denoised")
        group.attrs["ome"] = ome_metadata(axes, meta, name, levels_listed(group))


def image_group(arr: Any) -> Any | None:
    """The OME-Zarr group ``arr`` is the level of, or None (a plain array); writable where
    ``arr``'s store is."""
    import zarr

    if getattr(arr, "path", "") != LEVEL or getattr(arr, "store", None) is None:
        return None
    try:
        read_only = getattr(arr.store, "read_only", False)
        group = zarr.open_group(store=arr.store, mode="r" if read_only else "r+")
    except Exception:  # no group above the array (zarr raises several types)
        return None
    return group if levels_listed(group) else None


def multiscales_of(attrs: dict[str, Any]) -> list[Any] | None:
    """An OME-Zarr group's ``multiscales`` list: at the top of its attributes (0.4) or under
    ``ome`` (0.5); None when it has none."""
    ome = attrs.get("ome")
    return attrs.get("multiscales") or (ome.get("multiscales") if isinstance(ome, dict)
                                        else None)


def image_levels(location: str, full: Any) -> list[Any]:
    """Every level of the OME-Zarr image at ``location`` (0.4 or 0.5, napari-gr2r's results or
    another program's) whose full resolution is ``full``, largest first; ``[full]`` for a plain
    array, or where the levels listed are not each a smaller array of the same axes."""
    import zarr

    try:
        group = zarr.open_group(location, mode="r")
        multiscales = multiscales_of(dict(group.attrs))
        levels = [group[d["path"]] for d in multiscales[0]["datasets"]]
    except Exception:  # not a group, or metadata that does not list levels (several types)
        return [full]
    sides = [tuple(level.shape[-2:]) for level in levels]
    fits = (len(levels) > 1 and tuple(levels[0].shape) == tuple(full.shape)
            and all(level.ndim == full.ndim for level in levels)
            and all(b[0] <= a[0] and b[1] <= a[1] for a, b in zip(sides, sides[1:])))
    return levels if fits else [full]
