"""Translating napari layers to arrays and axes for the engine, and results back to layers.

Everything here runs on the main thread and never touches tensors: it reads layer
attributes, checks the user's choices with the engine's own validators, and builds the
keyword arguments of output layers.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from napari_gr2r import engine
from napari_gr2r._reader import LARGE_BYTES
from napari_gr2r.engine.io.pixelsize import length_unit, time_unit

MIN_SIDE = 16
"""Training needs at least this many pixels in Y and X (one patch)."""

DENOISED_SUFFIX = " [denoised]"

_MISSING: weakref.WeakKeyDictionary[Any, tuple[Any, int]] = weakref.WeakKeyDictionary()
"""Per layer, its data (a weak reference) and how many of its pixels are NaN or infinite."""


_ADDING = 0
"""How many :func:`put_layer` calls are adding a layer now (see :func:`adding_result`)."""


class LayerChoiceError(ValueError):
    """A layer or axes choice the engine cannot work with; the message is for users."""


def layer_kind(layer: Any) -> str:
    """The napari layer type as a word (``"image"``, ``"labels"``, ...)."""
    return layer.__class__.__name__.lower()  # __class__ sees through napari's PublicOnlyProxy


def is_image_layer(layer: Any) -> bool:
    return layer_kind(layer) == "image"


def data_shape(layer: Any) -> tuple[int, ...]:
    """Shape of the layer's full-resolution data, colour axis included."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return tuple(int(s) for s in data.shape)


def layer_array(layer: Any) -> Any:
    """The layer's full-resolution array (read on the main thread, never copied or modified)."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def is_large(layer: Any) -> bool:
    """Whether the layer is denoised into a zarr store instead of into memory.

    True for multiscale layers, for data that is not an in-memory numpy array (dask, zarr,
    memory maps, other lazy arrays) and for numpy arrays larger than :data:`LARGE_BYTES`.
    """
    if getattr(layer, "multiscale", False):
        return True
    data = layer_array(layer)
    if type(data) is not np.ndarray:  # dask, zarr, np.memmap, ...: never loaded whole
        return True
    return data.nbytes > LARGE_BYTES


def check_layer(layer: Any) -> None:
    """Raise :class:`LayerChoiceError` when ``layer`` is not an image the engine can denoise."""
    if layer is None:
        raise LayerChoiceError("No image layer selected: open an image, or select one in the layer list.")
    kind = layer_kind(layer)
    if kind != "image":
        raise LayerChoiceError(
            f"Layer {layer.name!r} is a {kind} layer; GR2R denoises intensity images. "
            "Select an image layer."
        )
    dtype = np.dtype(layer_array(layer).dtype)
    if dtype.kind not in "uif":
        raise LayerChoiceError(
            f"Layer {layer.name!r} has pixel type {dtype}; denoising needs integer or float "
            "intensities."
        )


def missing_pixels(layer: Any) -> int:
    """How many pixels of an in-memory float layer are NaN or infinite (0 for other layers).

    Counted once per layer and data array (the choice is checked at every keystroke).
    """
    data = layer_array(layer)
    if type(data) is not np.ndarray or data.dtype.kind != "f" or is_large(layer):
        return 0
    known = _MISSING.get(layer)
    if known is not None and known[0]() is data:
        return known[1]
    bad = int(data.size - np.count_nonzero(np.isfinite(data)))
    _MISSING[layer] = (weakref.ref(data), bad)
    return bad


def check_finite(layer: Any) -> None:
    """Raise :class:`LayerChoiceError` in plain words when pixels are NaN or infinite."""
    bad = missing_pixels(layer)
    if bad:
        raise LayerChoiceError(
            f"Layer {layer.name!r} has {bad:,} pixel(s) without a value (NaN or infinite); "
            "GR2R needs a value in every pixel. Fill them first (for example with the "
            "image's median) and choose the filled layer."
        )


def check_axes(layer: Any, axes: str, training: bool = False) -> engine.AxesInfo:
    """Validate ``axes`` against the layer; return the parsed axes or raise with a message."""
    check_layer(layer)
    shape = data_shape(layer)
    axes = axes.strip().upper()
    try:
        info = engine.parse_axes(axes, shape)
    except engine.GR2RError as exc:
        raise LayerChoiceError(str(exc)) from None
    if getattr(layer, "rgb", False) and not axes.endswith("C"):
        raise LayerChoiceError(
            f"Layer {layer.name!r} is RGB: its last axis (size {shape[-1]}) holds the colours. "
            "End the axes with C (e.g. 'YXC') to denoise the colours as channels, or convert "
            "the layer to separate channels first."
        )
    check_finite(layer)
    if training:
        ny, nx = info.size("Y"), info.size("X")
        if ny < MIN_SIDE or nx < MIN_SIDE:
            raise LayerChoiceError(
                f"Layer {layer.name!r} is {ny}x{nx} pixels in YX, too small for one training "
                f"patch ({MIN_SIDE}x{MIN_SIDE} at least). Train on a larger image, or load a "
                "model trained elsewhere and denoise."
            )
    return info


def check_model_fits(model: Any, info: engine.AxesInfo) -> None:
    """Raise :class:`LayerChoiceError` when a model cannot denoise an image with these axes."""
    try:
        model.check_compatible(info)
    except engine.GR2RError as exc:
        raise LayerChoiceError(str(exc)) from None


def spatial_kwargs(layer: Any, keep: list[int] | None = None) -> dict[str, Any]:
    """Scale, translate, units and axis labels of ``layer`` (optionally only some axes)."""
    picks = list(range(layer.ndim)) if keep is None else keep
    out: dict[str, Any] = {
        "scale": tuple(float(layer.scale[i]) for i in picks),
        "translate": tuple(float(layer.translate[i]) for i in picks),
        "axis_labels": tuple(layer.axis_labels[i] for i in picks),
        "units": tuple(str(layer.units[i]) for i in picks),
    }
    return out


def layer_pixel_size(layer: Any, axes: str) -> dict[str, Any] | None:
    """The layer's pixel size as the engine records it in a result (``scale`` per axis of the
    data, 1 for an RGB layer's colours; ``unit`` where napari's is a length napari-gr2r
    names), or None for a layer at napari's default scale of 1."""
    scale = [float(s) for s in layer.scale] + ([1.0] if getattr(layer, "rgb", False) else [])
    if len(scale) != len(axes.strip()) or all(s == 1 for s in scale):
        return None
    meta: dict[str, Any] = {"scale": scale}
    units = getattr(layer, "units", None)
    unit = length_unit(units[-1]) if units else None
    if unit:
        meta["unit"] = unit
    if units and "T" in axes and axes.index("T") < len(units):  # RGB's colours have no unit
        seconds = time_unit(units[axes.index("T")])
        if seconds:
            meta["time_unit"] = seconds
    return meta


def output_kwargs(layer: Any, name: str, **extra: Any) -> dict[str, Any]:
    """Keyword arguments of an image layer aligned with ``layer`` (same grid and display)."""
    kwargs = spatial_kwargs(layer)
    kwargs.update(
        name=name,
        rgb=bool(getattr(layer, "rgb", False)),
        colormap=layer.colormap.name if not getattr(layer, "rgb", False) else None,
        contrast_limits=tuple(float(c) for c in layer.contrast_limits),
        blending=layer.blending,
    )
    if kwargs["colormap"] is None:
        del kwargs["colormap"]
    kwargs.update(extra)
    return kwargs


def as_display_dtype(result: np.ndarray, layer: Any) -> np.ndarray:
    """RGB results go back to the input's integer type so napari shows the colours as before."""
    dtype = np.dtype(layer_array(layer).dtype)
    if getattr(layer, "rgb", False) and dtype.kind in "ui":
        limits = np.iinfo(dtype)
        return np.clip(np.rint(result), limits.min, limits.max).astype(dtype)
    return result


def put_layer(viewer: Any, data: Any, kwargs: dict[str, Any]) -> Any:
    """Add an image layer, or replace the data of the existing layer with the same name.

    ``data``: an array, or a list of arrays for a multiscale layer (full resolution first),
    which replaces the existing layer rather than its data. The layer selection stays as it
    was.
    """
    name = kwargs["name"]
    if name in viewer.layers:
        existing = viewer.layers[name]
        if is_image_layer(existing) and not isinstance(data, list) \
                and not getattr(existing, "multiscale", False) \
                and existing.ndim == data.ndim - int(kwargs.get("rgb", False)) \
                and bool(getattr(existing, "rgb", False)) == bool(kwargs.get("rgb", False)):
            existing.data = data
            for key in ("scale", "translate", "axis_labels", "units", "contrast_limits", "metadata"):
                if key in kwargs:
                    setattr(existing, key, kwargs[key])
            return existing
        viewer.layers.remove(existing)
    # napari selects a new layer; keep the user's selection (the input, usually) instead
    selected, active = set(viewer.layers.selection), viewer.layers.selection.active
    global _ADDING
    _ADDING += 1
    try:
        layer = viewer.add_image(data, **kwargs)
        viewer.layers.selection.clear()
        viewer.layers.selection.update(selected)
        viewer.layers.selection.active = active
    finally:
        _ADDING -= 1
    return layer


def adding_result() -> bool:
    """True while :func:`put_layer` adds a layer: the selection changes then are not the user's."""
    return _ADDING > 0


def denoised_name(layer: Any) -> str:
    return f"{layer.name}{DENOISED_SUFFIX}"


