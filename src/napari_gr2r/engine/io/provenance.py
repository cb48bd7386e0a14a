"""Which image a result is of, and whether a model has seen values like an image's.

- :func:`input_fingerprint`: a digest of an image's pixels, recorded in zarr results so that
  a store is only resumed, or reported complete, for the input it is the result of.
- :func:`range_message`: a warning when an image's values lie mostly outside the range a
  model was trained on (its normalisation), where the network never learned anything;
  :func:`warn_outside_range` issues it as a :class:`RangeWarning` (both ways of denoising,
  in memory and into a zarr store, do).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from .sources import ImageSource, as_lazy_or_numpy, is_in_memory

FINGERPRINT_WINDOW = 32
FINGERPRINT_SAMPLES = 9


def input_fingerprint(data: Any) -> str:
    """A digest of an image's shape, dtype and pixels: which input a stored result is of.

    A numpy array in memory is hashed whole; a lazy one (memory-mapped, zarr, dask) through
    :data:`FINGERPRINT_SAMPLES` windows spread along its diagonal, so that a large store is
    not read whole. Two images of the same shape but other pixels almost always differ there
    (microscope noise alone makes them differ).
    """
    import hashlib

    arr = as_lazy_or_numpy(data)
    shape = tuple(int(n) for n in arr.shape)
    digest = hashlib.sha256(repr((shape, np.dtype(arr.dtype).str)).encode())
    if is_in_memory(arr) or not all(shape):
        digest.update(np.ascontiguousarray(arr).tobytes())
        return digest.hexdigest()[:32]
    for k in range(FINGERPRINT_SAMPLES):
        f = k / (FINGERPRINT_SAMPLES - 1)
        index: list[Any] = [round(f * (n - 1)) for n in shape[:-2]]
        for n in shape[-2:]:
            w = min(FINGERPRINT_WINDOW, n)
            start = round(f * (n - w))
            index.append(slice(start, start + w))
        digest.update(np.ascontiguousarray(np.asarray(arr[tuple(index)])).tobytes())
    return digest.hexdigest()[:32]


# --------------------------------------------------------------------------------------------
# whether a model has seen values like these


RANGE_OVERLAP = 0.5
"""Below this share of an image's range inside the model's training range, the model is
warned about: its normalisation maps most of the image where the network never learned."""


class RangeWarning(UserWarning):
    """The image's values lie mostly outside the range the model was trained on."""


RANGE_SAMPLE = 2**20
"""At most this many pixels of an image in memory are read for its range."""


def _subsample(values: np.ndarray) -> np.ndarray:
    step = max(1, values.size // RANGE_SAMPLE)
    return np.asarray(values[::step], np.float64)


def range_message(source: ImageSource, low: list[float], high: list[float],
                  name: str = "The image") -> str | None:
    """Why the model with training range ``low..high`` (per channel) may give a wrong result
    on ``source`` (its values lie mostly outside that range), or None. Reads a sample of
    blocks (the whole image when it is in memory)."""
    rng = np.random.default_rng(0)
    if source.in_memory:
        blocks = [source.read_native(s) for s in range(source.n_samples)]
    else:
        blocks = source.random_blocks(rng, 8, (4, 128, 128), native=True)
    for c in range(min(source.czyx[0], len(low))):
        values = np.concatenate([_subsample(np.asarray(b[c]).ravel()) for b in blocks])
        values = values[np.isfinite(values)]
        if not values.size:
            continue
        lo, hi = (float(v) for v in np.percentile(values, [1, 99.9]))  # as fitted
        inside = max(0.0, min(hi, high[c]) - max(lo, low[c]))
        if hi > lo and inside / (hi - lo) < RANGE_OVERLAP:
            where = f" (channel {c})" if len(low) > 1 else ""
            return (f"{name}'s values ({lo:.4g} to {hi:.4g}{where}) lie mostly outside the range "
                    f"the model was trained on ({low[c]:.4g} to {high[c]:.4g}); its result may "
                    "be wrong. Train a model on images like this one (or check the file).")
    return None


def range_label(name: str | None) -> str:
    """How :func:`range_message` names the image of file or store ``name``: its last part."""
    label = os.path.basename(os.path.normpath(name)) if name else ""
    return label or "The image"


def warn_outside_range(source: ImageSource, low: list[float], high: list[float],
                       name: str | None = None, stacklevel: int = 2) -> None:
    """Warn (:class:`RangeWarning`) when ``source``'s values lie mostly outside ``low..high``.

    ``name``: the image's file or store (its last part is named), else "The image";
    ``stacklevel`` as the caller would give it to :func:`warnings.warn` (2: the line that
    called the caller).
    """
    message = range_message(source, low, high, range_label(name))
    if message is not None:
        warnings.warn(message, RangeWarning, stacklevel=stacklevel + 1)
