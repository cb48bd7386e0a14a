"""The noise variance, refitted for error estimation, where every per cent counts.

:func:`~napari_gr2r.engine.quality.assess` needs the noise variance to about 2 %: an error of
``δ`` in it moves a good denoiser's estimated error by about ``δ · σ² / MSE``, three to five times
as much. The training's noise fit (:meth:`NoiseLevel.estimate`, a robust variance of the
high-pass residue per intensity bin) reads image texture as noise by a few per cent, so for white
noise the variance of each intensity bin is measured again, in the spirit of Liu et al. (2013) and
Chen et al. (2015):

1. overlapping 6x6 patches, binned by their mean;
2. in each bin, the patches that look like pure noise: a gradient energy below the 99th
   percentile of what pure noise of the current variance estimate gives (texture is left out);
3. the variance is the mean of the patch covariance's smallest eigenvalues, the largest set whose
   mean does not exceed its median (the noise-only subspace);
4. steps 2-3 three times, then divided by what the same procedure gives on simulated pure noise
   of unit variance (the selection and eigenvalue biases);

and the line ``a·x + b`` is fitted to the bins again. Correlated noise keeps the training's fit
(its variance comes from the flattest windows, with its own simulated bias correction).
"""

from __future__ import annotations

import numpy as np

from .data import NoiseLevel

PATCH = 6
BINS = 8
MAX_PATCHES = 200_000
MIN_PER_BIN = 4 * PATCH * PATCH * 8


def refit_variance(level: NoiseLevel, blocks: list[np.ndarray],
                   rng: np.random.Generator) -> NoiseLevel:
    """``level`` with its variance function refitted on normalised ``(C, Z, Y, X)`` blocks.

    Returns ``level`` unchanged for correlated noise, or where the data is too small.
    """
    if level.kernel is not None:
        return level
    null = _patches([rng.standard_normal((192, 192))], 60_000, rng)
    q99 = float(np.quantile(_texture(null), 0.99))
    bias = _select_and_measure(null, q99, 1.0)
    a_out, b_out, typical = [], [], []
    for c in range(len(level.a)):
        planes = [p for b in blocks for p in b[c] if min(p.shape) >= 2 * PATCH]
        if not planes:
            return level
        patches = _patches(planes, MAX_PATCHES, rng)
        means = patches.mean(axis=1)
        bins = min(BINS, len(patches) // MIN_PER_BIN)
        if bins < 2:
            return level
        edges = np.quantile(means, np.linspace(0, 1, bins + 1))
        xs, vs, ws = [], [], []
        for lo, hi in zip(edges[:-1], edges[1:]):
            sel = (means >= lo) & (means <= hi)
            x = float(np.mean(means[sel]))
            start = float(level.a[c] * max(x, 0.0) + level.b[c])
            xs.append(x)
            vs.append(_select_and_measure(patches[sel], q99, start) / bias)
            ws.append(float(sel.sum()))
        from .data import _fit_line_nonnegative

        a, b = _fit_line_nonnegative(np.array(xs), np.array(vs), np.array(ws))
        a_out.append(a)
        b_out.append(b)
        typical.append(float(np.average(a * np.maximum(xs, 0) + b, weights=ws)))
    return NoiseLevel(a_out, b_out, typical, None)


def _patches(planes: list[np.ndarray], limit: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``limit`` overlapping patches, flattened, drawn evenly from the planes."""
    per_plane = max(1, limit // len(planes))
    out = []
    for plane in planes:
        view = np.lib.stride_tricks.sliding_window_view(plane, (PATCH, PATCH))
        view = view.reshape(-1, PATCH * PATCH)
        if len(view) > per_plane:
            view = view[np.sort(rng.choice(len(view), per_plane, replace=False))]
        out.append(np.asarray(view, np.float64))
    return np.concatenate(out)


def _texture(patches: np.ndarray) -> np.ndarray:
    """Gradient energy of each patch: the trace of its gradient covariance."""
    q = patches.reshape(-1, PATCH, PATCH)
    return np.sum(np.diff(q, axis=2) ** 2, axis=(1, 2)) + np.sum(np.diff(q, axis=1) ** 2,
                                                                  axis=(1, 2))


def _noise_subspace_variance(cov: np.ndarray) -> float:
    lam = np.sort(np.linalg.eigvalsh(cov))[::-1]
    for i in range(len(lam)):
        tail = lam[i:]
        if np.mean(tail) <= np.median(tail):
            return float(np.mean(tail))
    return float(lam[-1])


def _select_and_measure(patches: np.ndarray, q99: float, start: float,
                        iterations: int = 3) -> float:
    texture = _texture(patches)
    variance = start
    for _ in range(iterations):
        sel = texture < variance * q99
        if sel.sum() < 4 * PATCH * PATCH:
            break
        variance = _noise_subspace_variance(np.cov(patches[sel].T))
    return variance
