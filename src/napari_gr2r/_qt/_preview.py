"""The live preview: which part of a layer the viewer shows now, and where its denoised plane goes.

While training, every few steps the training panel asks for a :class:`SliceRequest` of the plane
in view (:func:`current_slice`); the training job denoises it between two steps with the model
as it is, and :func:`preview_plane` cuts the result back to the plane and places it in the
layer's world at the viewed position (a preview of plane 12 of a stack lies on plane 12 only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._layers import data_shape, layer_array, spatial_kwargs

PREVIEW_SUFFIX = " [preview]"

PREVIEW_WINDOW = 64
"""Rows (or columns) of context read around the viewed one when Y (or X) is not displayed."""


def preview_name(layer: Any) -> str:
    return f"{layer.name}{PREVIEW_SUFFIX}"


@dataclass
class SliceRequest:
    """The part of an image the viewer shows now, copied to numpy for a preview denoise."""

    data: np.ndarray
    axes: str
    channel: int | None
    """For images with a C axis shown channel by channel: the channel to keep afterwards."""
    z_index: int | None
    """For a 3D network: the index of the viewed slice within ``data``'s Z axis."""
    layer_kwargs: dict[str, Any]
    picks: dict[str, int] = field(default_factory=dict)
    """Y or X when not displayed: the viewed row or column within ``data``'s window."""
    expand: tuple[int, ...] = ()
    """Where the preview gets axes of length 1 back, so it lies at the viewed position."""
    place: tuple[int, ...] = ()
    """The layer's other dimensions (Z, T, …) when Y and X are shown: the plane gets axes of
    length 1 there, and :attr:`place_kwargs`, so that napari draws it on the viewed plane only."""
    place_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Cut:
    """How :func:`current_slice` reads each axis of the layer."""

    index: list[Any] = field(default_factory=list)
    axes: str = ""
    kept_dims: list[int] = field(default_factory=list)
    channel: int | None = None
    z_index: int | None = None
    picks: dict[str, int] = field(default_factory=dict)
    offsets: dict[int, int] = field(default_factory=dict)


def _displayed_layer_dims(viewer: Any, layer: Any, axes: str) -> list[int] | None:
    """The layer dimensions the viewer shows in 2D, or None for the usual Y and X.

    None also when napari shows 3D, or shows an axis other than Z, Y and X: the preview is
    then the YX plane at the current position.
    """
    dims = viewer.dims
    offset = dims.ndim - layer.ndim
    if dims.ndisplay != 2:
        return None
    shown = [int(d) - offset for d in dims.displayed]
    if any(d < 0 for d in shown):
        return None
    letters = {axes[d] for d in shown}
    if letters == {"Y", "X"} or not letters <= set("ZYX"):
        return None
    return sorted(shown)


def _cut(layer: Any, axes: str, pos: np.ndarray, shown: list[int] | None, net_dims: int,
         depth_z: int) -> _Cut:
    """Decide, axis by axis, what of the layer the preview reads (see :func:`current_slice`)."""
    shape = data_shape(layer)
    rgb = bool(getattr(layer, "rgb", False))
    cut = _Cut()
    for i, letter in enumerate(axes):
        size = shape[i]
        at = int(np.clip(np.round(pos[i]), 0, size - 1)) if i < layer.ndim else 0
        displayed = (letter in "YX") if shown is None else (i in shown)
        if displayed or (letter == "C" and (rgb and i == len(axes) - 1)):
            cut.index.append(slice(None))
            cut.axes += letter
            if i < layer.ndim:
                cut.kept_dims.append(i)
        elif letter == "C":
            cut.index.append(slice(None))
            cut.axes += letter
            cut.channel = at
            cut.offsets[i] = at
        elif letter in "YX" or (letter == "Z" and net_dims == 3):
            window = depth_z if letter == "Z" else PREVIEW_WINDOW
            lo = max(0, min(at - window // 2, size - window))
            cut.index.append(slice(lo, min(size, lo + window)))
            cut.axes += letter
            cut.offsets[i] = at
            if letter == "Z":
                cut.z_index = at - lo
            else:
                cut.picks[letter] = at - lo
        else:
            cut.index.append(at)
            cut.offsets[i] = at
    return cut


def _placed(layer: Any, offsets: dict[int, int]) -> dict[str, Any]:
    """The layer's spatial keywords with the translation moved to ``offsets`` (data indices)."""
    kwargs = spatial_kwargs(layer)
    kwargs["translate"] = tuple(
        t + offsets.get(i, 0) * s for i, (t, s) in enumerate(zip(kwargs["translate"],
                                                                 kwargs["scale"])))
    return kwargs


def current_slice(viewer: Any, layer: Any, axes: str, net_dims: int, depth_z: int = 16,
                  ) -> SliceRequest:
    """Copy the plane in view (with the context the network needs) out of ``layer``.

    Usually the viewer shows Y and X: the YX plane at the viewer's current position is
    copied (a 3D network gets a slab of up to ``depth_z`` slices around the current Z); the
    preview is placed on that plane (:attr:`SliceRequest.place`). When the viewer shows another
    pair of Z, Y and X (dimensions rolled or transposed), that plane is copied with a window of
    rows or columns around the viewed one along Y or X, and the preview keeps the layer's
    dimensions, one slice thick at the viewed position, so it lies on the plane in view.
    """
    axes = axes.strip().upper()
    rgb = bool(getattr(layer, "rgb", False))
    n_dims = layer.ndim
    point = np.asarray(viewer.dims.point[-n_dims:], dtype=float) if n_dims else np.zeros(0)
    pos = np.asarray(layer.world_to_data(point), dtype=float)
    shown = _displayed_layer_dims(viewer, layer, axes)
    cut = _cut(layer, axes, pos, shown, net_dims, depth_z)
    data = np.array(layer_array(layer)[tuple(cut.index)])
    others = tuple(i for i in range(n_dims) if i not in cut.kept_dims)
    place: tuple[int, ...] = ()
    place_kwargs: dict[str, Any] = {}
    if shown is None:
        kwargs = spatial_kwargs(layer, cut.kept_dims)
        expand: tuple[int, ...] = ()
        place, place_kwargs = others, _placed(layer, cut.offsets)
    else:
        kwargs = _placed(layer, cut.offsets)
        expand = others
    display = {"name": preview_name(layer), "rgb": rgb,
               "contrast_limits": tuple(float(c) for c in layer.contrast_limits)}
    if not rgb:
        display["colormap"] = layer.colormap.name
    kwargs.update(display)
    if place:
        place_kwargs.update(display)
    return SliceRequest(data=data, axes=cut.axes, channel=cut.channel, z_index=cut.z_index,
                        layer_kwargs=kwargs, picks=cut.picks, expand=expand, place=place,
                        place_kwargs=place_kwargs)


def finish_preview(request: SliceRequest, result: np.ndarray) -> np.ndarray:
    """Reduce a preview denoise to the displayed plane (drop context and hidden channels)."""
    axes = request.axes
    if request.z_index is not None:
        result = np.take(result, request.z_index, axis=axes.index("Z"))
        axes = axes.replace("Z", "")
    for letter, at in request.picks.items():
        result = np.take(result, at, axis=axes.index(letter))
        axes = axes.replace(letter, "")
    if request.channel is not None:
        result = np.take(result, request.channel, axis=axes.index("C"))
    if request.expand:
        result = np.expand_dims(result, request.expand)
    return result


def preview_plane(request: SliceRequest, result: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """The preview layer's data and keywords: :func:`finish_preview`, placed on the viewed plane."""
    plane = finish_preview(request, result)
    if not request.place:
        return plane, request.layer_kwargs
    return np.expand_dims(plane, request.place), request.place_kwargs
