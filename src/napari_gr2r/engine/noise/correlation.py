"""The noise's spatial correlation: one estimator, used by the training's fit and the estimate.

``tr(Σ J)`` in the error estimate (:mod:`~napari_gr2r.engine.quality.estimate`) sums the noise's
autocovariance ``C(d)`` times the denoiser's response at lag ``d`` over every lag the denoiser
reaches, so a smoothing denoiser's estimate needs ``C`` to some 5 % out to lags of 5-6 pixels
(real wide-field captures still correlate at lag 4); training reproduces the same correlation
in its generated noise. :func:`measure_correlation`:

1. windows of ``WINDOW`` pixels are chosen as noise-only by the flatness of the ring of
   ``RING`` pixels around them, ``GAP`` pixels away, whose noise is (nearly) independent of
   theirs, so the choice does not favour windows whose own noise happens to be small (windows
   far noisier than the others chosen, signal inside a flat ring, are left out);
2. in each, a quadratic trend is removed and the autocovariance measured at lags up to
   ``RADIUS``; what removing the trend does to it is linear in ``C`` and known exactly
   (:func:`_design`), so ``C`` is solved for by least squares, without simulation; in a volume
   this is done on the differences of neighbouring planes, which hold the same noise (if it is
   independent from plane to plane) and much less of the signal;
3. the kernel (unit L2 norm, ``KERNEL_RADIUS``) whose autocorrelation is ``C / C(0)`` comes
   from the square root of its spectrum, corrected a few times for the truncation
   (:func:`kernel_from_correlation`).

Noise whose correlation between neighbouring pixels stays below ``CORRELATION_THRESHOLD``
counts as white; whether it does is judged first by :func:`looks_correlated`, in small windows
(a detector, not a second estimator: it measures one number and keeps none).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

WINDOW = 16
GAP = 4
RING = 6
OUTLIER = 2.0
ORDER = 2
"""The trend removed from each measured window: a quadratic surface."""
RADIUS = 6
KERNEL_RADIUS = 8
STRIDE = 4
QUANTILE = 0.1
MAX_WINDOWS = 20_000


CORRELATION_THRESHOLD = 0.2
"""Noise whose correlation between neighbouring pixels stays below this counts as white."""


@dataclass
class Correlation:
    """What :func:`measure_correlation` found, per channel of normalised blocks."""

    kernel: np.ndarray
    """Unit-L2 kernel whose autocorrelation is the noise's (side ``2 KERNEL_RADIUS + 1``)."""
    rho: np.ndarray
    """The noise's correlation between pixels at lags ``-RADIUS..RADIUS`` (1 at the centre)."""
    variance: list[float]
    """Per channel, the noise variance in the chosen windows."""
    mean: list[float]
    """Per channel, the mean intensity of the chosen windows."""

    @property
    def neighbour(self) -> float:
        """The larger of the correlations with the next pixel in Y and in X."""
        return float(max(self.rho[RADIUS, RADIUS + 1], self.rho[RADIUS + 1, RADIUS]))


DETECT_WINDOW = 12
DETECT_QUANTILE = 0.15


def looks_correlated(blocks: list[np.ndarray], rng: np.random.Generator) -> bool:
    """Whether the noise correlates between neighbouring pixels (``CORRELATION_THRESHOLD``),
    judged in the flattest (by their own variance) of small detrended windows.

    Only a yes or no: windows chosen by their own variance hold less noise than others, which
    lowers what they measure (so :func:`measure_correlation` chooses by the surroundings);
    small windows fit between fine structures, which the larger windows of the measurement
    cannot, and smooth structure cannot raise the correlation of a flat, detrended window.
    """
    size = DETECT_WINDOW
    planes = [p for b in blocks for c in b for p in c if min(p.shape) >= size]
    if not planes:
        return False
    per_plane = max(64, MAX_WINDOWS // len(planes))
    rhos = []
    for c in range(blocks[0].shape[0]):
        windows = []
        for b in blocks:
            for plane in b[c]:
                if min(plane.shape) < size:
                    continue
                view = np.lib.stride_tricks.sliding_window_view(
                    np.asarray(plane, np.float64), (size, size))[::STRIDE, ::STRIDE]
                view = view.reshape(-1, size, size)
                if len(view) > per_plane:
                    view = view[np.sort(rng.choice(len(view), per_plane, replace=False))]
                windows.append(_remove_plane(view))
        w = np.concatenate(windows)
        if len(w) < 20:
            return False
        own = w.var(axis=(1, 2))
        w = w[own <= np.quantile(own, DETECT_QUANTILE)]
        var = float(np.mean(w * w))
        rhos.append(max(float(np.mean(w[:, :, 1:] * w[:, :, :-1])),
                        float(np.mean(w[:, 1:, :] * w[:, :-1, :]))) / max(var, 1e-30))
    return float(np.mean(rhos)) >= CORRELATION_THRESHOLD


def measure_correlation(blocks: list[np.ndarray], rng: np.random.Generator,
                        ) -> Correlation | None:
    """The noise's correlation between pixels, measured on normalised ``(C, Z, Y, X)`` blocks
    (None when they are too small for the windows)."""
    covs, means = [], []
    for c in range(blocks[0].shape[0]):
        measured = measure_autocovariance([pair for b in blocks for pair in planes(b[c])], rng)
        if measured is None:
            return None
        covs.append(measured[0])
        means.append(measured[1])
    rho = np.mean([cov / max(cov[RADIUS, RADIUS], 1e-12) for cov in covs], axis=0)
    return Correlation(kernel_from_correlation(rho), rho,
                       [float(cov[RADIUS, RADIUS]) for cov in covs], means)


def planes(volume: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(plane to measure the noise on, its intensity)`` for a ``(Z, Y, X)`` channel: the
    planes of an image; in a volume, the differences of neighbouring planes over sqrt 2, which
    hold the same noise (independent from plane to plane) and much less of the signal."""
    volume = np.asarray(volume, np.float64)
    if len(volume) < 2:
        return [(p, p) for p in volume]
    return [((a - b) / np.sqrt(2), (a + b) / 2) for a, b in zip(volume[:-1], volume[1:])]


def measure_autocovariance(pairs: list[tuple[np.ndarray, np.ndarray]],
                           rng: np.random.Generator) -> tuple[np.ndarray, float] | None:
    """The autocovariance ``(2R+1, 2R+1)`` of the noise in the windows chosen on ``pairs``
    (from :func:`planes`), and their mean intensity."""
    outer = WINDOW + 2 * (GAP + RING)
    pairs = [p for p in pairs if min(p[0].shape) >= outer]
    if not pairs:
        return None
    ring = np.ones((outer, outer), bool)
    ring[RING:outer - RING, RING:outer - RING] = False
    ring_projector = _projector(ring)
    inner = slice(RING + GAP, RING + GAP + WINDOW)
    stats, own, lags, means = [], [], [], []
    per_plane = max(16, MAX_WINDOWS // len(pairs))
    for plane, intensity in pairs:
        view = np.lib.stride_tricks.sliding_window_view(plane, (outer, outer))[::STRIDE, ::STRIDE]
        level = np.lib.stride_tricks.sliding_window_view(
            intensity, (outer, outer))[::STRIDE, ::STRIDE].reshape(-1, outer, outer)
        view = view.reshape(-1, outer, outer)
        if len(view) > per_plane:
            picked = np.sort(rng.choice(len(view), per_plane, replace=False))
            view, level = view[picked], level[picked]
        r = view[:, ring]
        stats.append((r - r @ ring_projector.T).var(axis=1))
        windows = _remove_plane(view[:, inner, inner])
        own.append(windows.var(axis=(1, 2)))
        means.append(level[:, inner, inner].mean(axis=(1, 2)))
        lags.append(_lag_products(windows))
    stat, own_var = np.concatenate(stats), np.concatenate(own)
    mean, lag = np.concatenate(means), np.concatenate(lags)
    if len(stat) < 20:
        return None
    keep = stat <= np.quantile(stat, QUANTILE)
    # a window with signal inside a flat ring: far above what noise alone gives
    keep &= own_var <= OUTLIER * np.median(own_var[keep])
    measured = lag[keep].mean(axis=0)
    design = _design(WINDOW, RADIUS)
    half = np.linalg.lstsq(design, measured, rcond=None)[0]
    return _full(half, RADIUS), float(mean[keep].mean())


def _half_lags(radius: int) -> list[tuple[int, int]]:
    """One lag of each ``±d`` pair within ``radius`` (``(0, 0)`` first)."""
    return [(dy, dx) for dy in range(0, radius + 1) for dx in range(-radius, radius + 1)
            if dy > 0 or dx >= 0]


def _full(half: np.ndarray, radius: int) -> np.ndarray:
    out = np.zeros((2 * radius + 1,) * 2)
    for value, (dy, dx) in zip(half, _half_lags(radius)):
        out[radius + dy, radius + dx] = out[radius - dy, radius - dx] = value
    return out


def _projector(mask: np.ndarray, order: int = 1) -> np.ndarray:
    """Least-squares projection of the pixels of ``mask`` onto a plane (``order`` 1) or a
    quadratic surface (2)."""
    yy, xx = (a[mask].astype(np.float64) for a in np.mgrid[0:mask.shape[0], 0:mask.shape[1]])
    terms = [np.ones_like(yy), yy, xx]
    if order > 1:
        terms += [yy * yy, xx * xx, yy * xx]
    design = np.stack(terms, axis=1)
    return design @ np.linalg.pinv(design)


def _plane_projector(size: int) -> np.ndarray:
    """The trend removed from each measured window."""
    return _projector(np.ones((size, size), bool), ORDER)


def _remove_plane(windows: np.ndarray) -> np.ndarray:
    size = windows.shape[-1]
    flat = windows.reshape(len(windows), -1)
    return (flat - flat @ _plane_projector(size).T).reshape(windows.shape)


def _lag_products(windows: np.ndarray) -> np.ndarray:
    """Per window, the mean product of pixel pairs at each of :func:`_half_lags`."""
    size = windows.shape[-1]
    out = []
    for dy, dx in _half_lags(RADIUS):
        a = windows[:, :size - dy, max(-dx, 0):size - max(dx, 0)]
        b = windows[:, dy:, max(dx, 0):size + min(dx, 0)]
        out.append(np.mean(a * b, axis=(1, 2)))
    return np.stack(out, axis=1)


@lru_cache(maxsize=4)
def _design(size: int, radius: int) -> np.ndarray:
    """``M`` with ``E[lag products] = M @ C_half`` for noise of autocovariance ``C`` (zero
    beyond ``radius``) after the trend is removed from each ``size`` window."""
    lags = _half_lags(radius)
    q = np.eye(size * size) - _plane_projector(size)
    idx = np.arange(size * size).reshape(size, size)
    pairs = [(idx[:size - dy, max(-dx, 0):size - max(dx, 0)].ravel(),
              idx[dy:, max(dx, 0):size + min(dx, 0)].ravel()) for dy, dx in lags]
    design = np.zeros((len(lags), len(lags)))
    for col, (ey, ex) in enumerate(lags):
        # E[w'_i w'_j] = (Q Σ Q)_ij with Σ = sum_e C_e B_e, B_e ones at (u, u + e), (u + e, u)
        u = idx[max(-ey, 0):size - max(ey, 0), max(-ex, 0):size - max(ex, 0)].ravel()
        v = u + ey * size + ex
        t = q[:, u] @ q[v, :]
        if (ey, ex) != (0, 0):
            t = t + t.T
        for row, (i, j) in enumerate(pairs):
            design[row, col] = t[i, j].mean()
    return design


def kernel_from_correlation(rho: np.ndarray, radius: int = KERNEL_RADIUS, n: int = 64,
                            iterations: int = 6) -> np.ndarray:
    """A symmetric kernel (unit L2 norm, side ``2 radius + 1``) whose autocorrelation is
    ``rho`` at its lags."""
    r = rho.shape[0] // 2
    target = rho.copy()
    kernel = None
    for _ in range(iterations):
        kernel = spectral_root(target, radius, n)
        realised = _autocorrelation(kernel)[2 * radius - r:2 * radius + r + 1,
                                            2 * radius - r:2 * radius + r + 1]
        target = target + (rho - realised)
        target[r, r] = 1.0
    return kernel.astype(np.float32)


def _autocorrelation(kernel: np.ndarray) -> np.ndarray:
    """The full autocorrelation of ``kernel`` (side ``2 size - 1``, unnormalised)."""
    size = kernel.shape[0]
    pad = np.zeros((2 * size, 2 * size))
    pad[:size, :size] = kernel
    spec = np.abs(np.fft.fft2(pad)) ** 2
    acf = np.real(np.fft.ifft2(spec))
    acf = np.fft.fftshift(acf)
    c = size
    return acf[c - size + 1:c + size, c - size + 1:c + size]


def kernel_autocorrelation(kernel: list[list[float]] | np.ndarray | None,
                           radius: int = 3) -> np.ndarray:
    """The correlation between pixels that ``kernel`` gives white noise, at lags
    ``-radius..radius`` (a single 1 at the centre for ``None``, white noise)."""
    size = 2 * radius + 1
    out = np.zeros((size, size))
    if kernel is None:
        out[radius, radius] = 1.0
        return out
    k = np.asarray(kernel, np.float64)
    acf = _autocorrelation(k)
    c = k.shape[0] - 1
    pad = max(0, radius - c)
    acf = np.pad(acf, pad)
    c += pad
    out = acf[c - radius:c + radius + 1, c - radius:c + radius + 1]
    return out / max(out[radius, radius], 1e-12)


def spectral_root(rho: np.ndarray, radius: int, n: int) -> np.ndarray:
    """The symmetric square root of the correlation ``rho`` on an ``n``-periodic grid (by the
    FFT), cropped to side ``2 radius + 1`` and scaled to unit L2 norm (float64)."""
    r = rho.shape[0] // 2
    grid = np.zeros((n, n))
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            grid[dy % n, dx % n] = rho[dy + r, dx + r]
    spectrum = np.clip(np.real(np.fft.fft2(grid)), 0, None)
    kernel = np.fft.fftshift(np.real(np.fft.ifft2(np.sqrt(spectrum))))
    kernel = kernel[n // 2 - radius:n // 2 + radius + 1, n // 2 - radius:n // 2 + radius + 1]
    return kernel / np.sqrt(np.sum(kernel**2))
