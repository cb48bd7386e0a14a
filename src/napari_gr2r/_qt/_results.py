"""Results back into the viewer: a denoised layer laid over its input, or a result file opened.

:func:`add_result_layer` is the one way every part of the widget and the menu commands add a
denoised image: on the input's grid (scale, translate, units, axis labels), with its contrast
and colour map, keeping the input layer's own metadata and adding a ``gr2r`` entry (the source
layer, the model, where it was stored, the error estimate when one was made).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_gr2r import engine
from napari_gr2r._reader import layer_data
from napari_gr2r.engine.io.formats import stem_of

from ._layers import DENOISED_SUFFIX, as_display_dtype, denoised_name, output_kwargs, put_layer


def result_metadata(layer: Any, model: Any, **gr2r: Any) -> dict[str, Any]:
    """The input layer's metadata (a copy) with this result's ``gr2r`` entry."""
    metadata = {k: v for k, v in dict(getattr(layer, "metadata", {}) or {}).items()
                if k != "gr2r"}
    metadata["gr2r"] = {"source": layer.name, "model": repr(model), **gr2r}
    return metadata


def add_result_layer(viewer: Any, layer: Any, data: Any, model: Any, *, name: str | None = None,
                     **gr2r: Any) -> Any:
    """Add (or replace) ``<input> [denoised]``: ``data`` laid over ``layer``.

    ``gr2r``: further entries of the result's ``gr2r`` metadata (``store=``, ``estimate=``).
    A lazy array (a zarr store being written) is shown without napari's slice cache, so that
    refreshing it shows the blocks written since.
    """
    lazy = not isinstance(data, np.ndarray)  # a dask array, or a list of them (multiscale)
    kwargs = output_kwargs(layer, name or denoised_name(layer),
                           metadata=result_metadata(layer, model, **gr2r))
    if lazy:
        kwargs["cache"] = False
    return put_layer(viewer, data if lazy else as_display_dtype(data, layer), kwargs)


def estimate_metadata(model: Any, report: engine.QualityReport) -> dict[str, Any]:
    """What a result layer's metadata keeps of an error estimate."""
    return {"model": repr(model), **report.to_dict()}


def record_estimate(viewer: Any, layer: Any, model: Any, report: engine.QualityReport) -> None:
    """Add the estimate to the result layer of ``layer`` if it was denoised with ``model``."""
    name = denoised_name(layer)
    if name not in viewer.layers:
        return
    gr2r = viewer.layers[name].metadata.get("gr2r")
    if isinstance(gr2r, dict) and gr2r.get("model") == repr(model):
        gr2r["estimate"] = estimate_metadata(model, report)


def opened_file(viewer: Any, path: str) -> list[Any]:
    """The layers of ``viewer`` opened from the result file ``path``."""
    return [layer for layer in viewer.layers
            if (layer.metadata.get("gr2r") or {}).get("file") == str(path)]


def open_result_file(viewer: Any, path: str) -> list[Any]:
    """Open a result file as image layers (a zarr store lazily), with its pixel size and units.

    A file already open (from an earlier run) is refreshed, not opened again. Raises
    :class:`~napari_gr2r.engine.GR2RError` when the file cannot be read.
    """
    already = opened_file(viewer, path)
    if already:
        for layer in already:
            layer.refresh()
        return already
    data, kwargs, _ = layer_data(path)
    kwargs["name"] = f"{stem_of(path)}{DENOISED_SUFFIX}"
    kwargs["metadata"] = {"gr2r": {"file": str(path)}}
    layers = viewer.add_image(data, **kwargs)
    return layers if isinstance(layers, list) else [layers]
