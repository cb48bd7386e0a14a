"""How much neighbouring planes share, and the context that follows (``context="auto"``).

Neighbouring planes help a plane's denoising only when they show the same structures: repeated
captures of a still field and thin Z sections do, a time-lapse of fast-moving cells less, a
stack of unrelated fields not at all (there the extra input only adds noise to learn from).
:func:`neighbour_similarity` measures it from the noisy data alone, as the correlation of the
*signal* of neighbouring planes:

* each plane is binned (``BIN`` x ``BIN`` pixel means): fine enough that structures which
  moved by a few pixels between planes no longer match (a small network gains little from
  such planes and can lose), coarse enough to average some noise;
* the covariance of two neighbouring binned planes holds only signal (their noise is
  independent);
* each plane's own signal variance is the covariance of the binned even rows with the binned
  odd rows of that plane: two views of the same structures whose noise is independent for white
  noise and for noise correlated along the scan lines (X).

The ratio, clipped to [0, 1], is 1 for identical structures whatever the noise level and 0
for unrelated ones. Noise correlated across rows inflates the signal variance and so lowers
the similarity: the measure errs towards less context. :func:`suggest_context` maps it to a
number of planes on each side with the fixed steps of :data:`CONTEXT_STEPS`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .context import context_axis

__all__ = ["BIN", "CONTEXT_STEPS", "neighbour_similarity", "suggest_context"]

BIN = 2
"""Binning (pixels per side) before the planes are compared."""

CONTEXT_STEPS = ((0.9, 3), (0.7, 2), (0.6, 1))
"""(least similarity, planes on each side), first match wins; below the last: 0."""

_PAIRS = 12
_SIDE = 256


def _binned_halves(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The plane binned ``BIN`` x ``BIN``, and its even and odd rows each binned alike."""
    b = BIN
    ny, nx = (plane.shape[0] // (2 * b)) * 2 * b, (plane.shape[1] // b) * b
    p = plane[:ny, :nx].astype(np.float64)
    whole = p.reshape(ny // b, b, nx // b, b).mean(axis=(1, 3))
    halves = [p[o::2].reshape(ny // b, b // 2, nx // b, b).mean(axis=(1, 3)) for o in (0, 1)]
    return whole, halves[0], halves[1]


def _cov(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a - a.mean()) * (b - b.mean())))


def _pair_similarity(first: np.ndarray, second: np.ndarray) -> float | None:
    """Signal correlation of two planes ``(Y, X)``; None when either has no structure."""
    a, a0, a1 = _binned_halves(first)
    b, b0, b1 = _binned_halves(second)
    sa, sb = _cov(a0, a1), _cov(b0, b1)
    if not (sa > 0 and sb > 0):
        return None
    return float(np.clip(_cov(a, b) / np.sqrt(sa * sb), 0.0, 1.0))


def _spread(n: int, k: int) -> np.ndarray:
    """Up to ``k`` indices spread evenly over ``range(n)``."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int)) if n > 0 else \
        np.zeros(0, int)


def _pairs(source: Any, axis: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Up to ``_PAIRS`` neighbouring planes ``((sample, z), (sample, z))``, spread evenly over
    the image (every pair when there are fewer), without listing them all."""
    info = source.info
    nz = source.czyx[1]
    if axis == "T":
        shape = info.sample_shape
        t = info.sample_axes.index("T")
        rest = shape[:t] + (shape[t] - 1,) + shape[t + 1:]  # planes that have a next one
        pairs = []
        for i in _spread(int(np.prod(rest)) * nz, _PAIRS):
            flat, z = divmod(int(i), nz)
            lead = list(np.unravel_index(flat, rest))
            first = int(np.ravel_multi_index(tuple(lead), shape))
            lead[t] += 1
            pairs.append(((first, z), (int(np.ravel_multi_index(tuple(lead), shape)), z)))
        return pairs
    pairs = []
    for i in _spread(source.n_samples * max(nz - 1, 0), _PAIRS):
        s, z = divmod(int(i), nz - 1)
        pairs.append(((s, z), (s, z + 1)))
    return pairs


def neighbour_similarity(source: Any, axis: str | None) -> float | None:
    """Median signal correlation of neighbouring planes along ``axis`` (``"T"`` or ``"Z"``).

    ``source`` is an :class:`~napari_gr2r.engine.io.sources.ImageSource`; up to a dozen pairs
    of neighbouring planes, spread evenly over the image, are read (centre crops of at most
    256 x 256 pixels, every channel).
    None when there are no neighbours or no structure to compare.
    """
    if axis is None:
        return None
    _, _, ny, nx = source.czyx
    hy, hx = min(ny, _SIDE), min(nx, _SIDE)
    y = slice((ny - hy) // 2, (ny - hy) // 2 + hy)
    x = slice((nx - hx) // 2, (nx - hx) // 2 + hx)
    if hy < 2 * BIN or hx < BIN:
        return None
    values = []
    for (s0, z0), (s1, z1) in _pairs(source, axis):
        first = source.read(s0, slice(z0, z0 + 1), y, x)
        second = source.read(s1, slice(z1, z1 + 1), y, x)
        for c in range(first.shape[0]):
            value = _pair_similarity(first[c, 0], second[c, 0])
            if value is not None:
                values.append(value)
    return float(np.median(values)) if values else None


def suggest_context(images: Any, dims: int) -> int:
    """Planes on each side for a 2D network on ``images`` (a
    :class:`~napari_gr2r.engine.data.collection.SourceSet`): the step of
    :data:`CONTEXT_STEPS` that the least similar image reaches; 0 for a 3D network or an
    image without neighbouring planes."""
    if dims != 2:
        return 0
    least = None
    for source in images.sources:
        value = neighbour_similarity(source, context_axis(source.info, dims))
        if value is None:
            return 0
        least = value if least is None else min(least, value)
    for threshold, planes in CONTEXT_STEPS:
        if least is not None and least >= threshold:
            return planes
    return 0
