"""The noise model (variance as a function of signal, spatial correlation) and its estimation.

:meth:`NoiseLevel.estimate` fits the signal-dependent variance from the high-pass residue of
the image, then measures the noise's spatial correlation in the flattest windows and corrects
the biases of that measurement with simulated noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class NoiseLevel:
    """Noise variance as a function of the clean signal, per channel, in normalised units.

    ``var_c(x) = a_c * max(x, 0) + b_c``: Gaussian noise has ``a = 0``; Poisson-Gaussian noise
    has ``a`` proportional to the camera gain.
    """

    a: list[float]
    b: list[float]
    typical: list[float]
    """Average noise variance over the image, per channel."""
    kernel: list[list[float]] | None = None
    """Spatial correlation of the noise in YX: white noise filtered by this kernel (unit L2
    norm, odd sides), or None for white noise (the common case)."""

    def variance(self, signal: np.ndarray | Any, channel_axis: int = 1) -> Any:
        """Variance map for a ``(B, C, ...)`` torch tensor or numpy array of clean signal."""
        ndim = signal.ndim
        shape = [1] * ndim
        shape[channel_axis] = -1
        a = _like(signal, self.a).reshape(shape)
        b = _like(signal, self.b).reshape(shape)
        return a * signal.clamp(min=0) + b if hasattr(signal, "clamp") else \
            a * np.maximum(signal, 0) + b

    @property
    def mean_variance(self) -> float:
        """The typical noise variance, averaged over channels."""
        return float(np.mean(self.typical))

    @classmethod
    def estimate(cls, blocks: list[np.ndarray], rng: np.random.Generator,
                 bins: int = 16) -> NoiseLevel:
        """Fit ``var = a * mean + b`` from the high-pass residue of normalised ``(C,Z,Y,X)`` blocks.

        Each YX plane is filtered with Immerkaer's 3x3 kernel (white noise of variance s^2 comes
        out with variance s^2 after dividing by 6) and with a 3x3 mean; pixels are binned by the
        local mean and a robust (MAD) variance is taken per bin, then a line is fitted.
        """
        channels = blocks[0].shape[0]
        a_out, b_out, typical = [], [], []
        for c in range(channels):
            means, details = [], []
            for block in blocks:
                for plane in block[c]:
                    if plane.shape[0] < 3 or plane.shape[1] < 3:
                        continue
                    m, d = _mean_and_detail(plane)
                    means.append(m.ravel())
                    details.append(d.ravel())
            if not means:
                a_out.append(0.0)
                b_out.append(1e-4)
                typical.append(1e-4)
                continue
            mean = np.concatenate(means)
            detail = np.concatenate(details)
            if mean.size > 2_000_000:
                keep = rng.choice(mean.size, 2_000_000, replace=False)
                mean, detail = mean[keep], detail[keep]
            edges = np.unique(np.quantile(mean, np.linspace(0, 1, bins + 1)))
            xs, vs, ws = [], [], []
            for lo, hi in zip(edges[:-1], edges[1:]):
                sel = (mean >= lo) & (mean <= hi)
                if sel.sum() < 50:
                    continue
                d = detail[sel]
                mad = np.median(np.abs(d - np.median(d)))
                xs.append(float(np.median(mean[sel])))
                vs.append(float((1.4826 * mad) ** 2))
                ws.append(float(sel.sum()))
            a, b = _fit_line_nonnegative(np.array(xs), np.array(vs), np.array(ws))
            a_out.append(a)
            b_out.append(b)
            typical.append(float(np.average(a * np.maximum(xs, 0) + b, weights=ws)) if xs else b)
        level = cls(a_out, b_out, typical)
        correlation = _flat_window_correlation(blocks, rng)
        if correlation is None:
            return level
        kernel, flat_variance, flat_means = correlation
        # High-pass statistics see little of correlated noise: rescale the fitted variance so
        # that it matches the variance measured in the flattest windows.
        for c in range(channels):
            fitted = float(np.mean(level.a[c] * np.maximum(flat_means[c], 0) + level.b[c]))
            factor = float(flat_variance[c]) / max(fitted, 1e-12)
            level.a[c] = float(level.a[c] * factor)
            level.b[c] = float(level.b[c] * factor)
            level.typical[c] = float(level.typical[c] * factor)
        level.kernel = kernel.tolist()
        return level

    @property
    def neighbour_correlation(self) -> float:
        """Correlation of the noise between neighbouring pixels, mean of Y and X (0: white)."""
        if self.kernel is None:
            return 0.0
        k = np.asarray(self.kernel, np.float64)
        along_x = np.sum(k[:, 1:] * k[:, :-1])
        along_y = np.sum(k[1:, :] * k[:-1, :])
        return float((along_x + along_y) / 2 / np.sum(k * k))


def _like(ref: Any, values: list[float]) -> Any:
    if hasattr(ref, "new_tensor"):
        return ref.new_tensor(values)
    return np.asarray(values, dtype=np.float32)


def _mean_and_detail(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = plane.astype(np.float32, copy=False)
    c = p[1:-1, 1:-1]
    n, s, w, e = p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]
    nw, ne, sw, se = p[:-2, :-2], p[:-2, 2:], p[2:, :-2], p[2:, 2:]
    detail = (4 * c - 2 * (n + s + w + e) + (nw + ne + sw + se)) / 6.0
    mean = (c + n + s + w + e + nw + ne + sw + se) / 9.0
    return mean, detail


CORRELATION_RADIUS = 3
"""Lags (pixels) over which the noise's spatial correlation is measured and reproduced."""
CORRELATION_THRESHOLD = 0.2
"""Noise whose correlation between neighbouring pixels stays below this counts as white."""


def _flat_windows(plane: np.ndarray, size: int, limit: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """At most ``limit`` windows of ``plane`` (on a 4-pixel grid, drawn at random when there
    are more) with their best-fitting quadratic surface removed, and their means.

    The quadratic (not just a plane) takes out the smooth curvature of out-of-focus signal,
    which would otherwise read as correlated noise. Only the drawn windows are copied.
    """
    view = np.lib.stride_tricks.sliding_window_view(plane, (size, size))[::4, ::4]
    rows, cols = view.shape[:2]
    picked = np.arange(rows * cols)
    if len(picked) > limit:
        picked = np.sort(rng.choice(len(picked), limit, replace=False))
    windows = view[picked // cols, picked % cols].reshape(-1, size * size).astype(np.float64)
    yy, xx = (a.ravel().astype(np.float64) for a in np.mgrid[0:size, 0:size])
    design = np.stack([np.ones_like(yy), yy, xx, yy * yy, xx * xx, yy * xx], axis=1)
    projector = design @ np.linalg.pinv(design)
    means = windows.mean(axis=1)
    return (windows - windows @ projector.T).reshape(-1, size, size), means


def _window_autocovariance(windows: np.ndarray, radius: int) -> np.ndarray:
    size = windows.shape[-1]
    cov = np.zeros((2 * radius + 1, 2 * radius + 1))
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            a = windows[:, max(dy, 0):size + min(dy, 0), max(dx, 0):size + min(dx, 0)]
            b = windows[:, max(-dy, 0):size + min(-dy, 0), max(-dx, 0):size + min(-dx, 0)]
            cov[dy + radius, dx + radius] = np.mean(a * b)
    return cov


def _flattest(windows: np.ndarray, quantile: float) -> np.ndarray:
    var = windows.var(axis=(1, 2))
    return var <= np.quantile(var, quantile)


def _simulated_measurement(kernel: np.ndarray, size: int, quantile: float,
                           rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """What the flat-window measurement gives on pure noise of unit variance made with
    ``kernel``: ``(correlation, variance)``."""
    radius = CORRELATION_RADIUS
    ky, kx = kernel.shape
    white = rng.standard_normal((256 + ky - 1, 256 + kx - 1))
    noise = np.einsum("ijkl,kl->ij", np.lib.stride_tricks.sliding_window_view(white, kernel.shape),
                      kernel)
    windows, _ = _flat_windows(noise, size, 20_000, rng)
    cov = _window_autocovariance(windows[_flattest(windows, quantile)], radius)
    return cov / cov[radius, radius], cov[radius, radius] / float(np.var(noise))


def _flat_window_correlation(blocks: list[np.ndarray], rng: np.random.Generator, size: int = 12,
                             quantile: float = 0.15,
                             ) -> tuple[np.ndarray, list[float], list[float]] | None:
    """The noise's correlation between pixels, measured in the flattest windows of the data.

    Returns ``(kernel, variance, mean)``: a kernel reproducing the correlation at lags up to
    :data:`CORRELATION_RADIUS` (see :func:`_kernel_from_correlation`) and, per channel, the
    noise variance and the mean
    signal in those windows; None when the noise looks white (or the data is too small to
    tell). Removing each window's trend and picking the flattest windows both lower what is
    measured (correlation and variance); those biases are measured on simulated noise of the
    measured correlation and taken out.
    """
    radius = CORRELATION_RADIUS
    channels = blocks[0].shape[0]
    # about 20,000 windows per channel in all, however many planes the blocks hold
    per_plane = max(64, 20_000 // max(1, sum(b.shape[1] for b in blocks)))
    per_channel = []
    for c in range(channels):
        windows, means = [], []
        for block in blocks:
            for plane in block[c]:
                if min(plane.shape) < size:
                    continue
                w, m = _flat_windows(plane, size, per_plane, rng)
                windows.append(w)
                means.append(m)
        if not windows:
            return None
        w, m = np.concatenate(windows), np.concatenate(means)
        if len(w) < 20:
            return None
        keep = _flattest(w, quantile)
        per_channel.append((_window_autocovariance(w[keep], radius), float(np.mean(m[keep]))))
    cov = np.mean([pc[0] / max(pc[0][radius, radius], 1e-12) for pc in per_channel], axis=0)
    measured = (cov + cov[::-1, ::-1]) / 2  # an autocorrelation is symmetric
    if max(measured[radius, radius + 1], measured[radius + 1, radius]) < CORRELATION_THRESHOLD:
        return None
    # fixed-point correction: find the correlation whose simulated measurement is the one made
    rho = measured
    for _ in range(4):
        rho_sim, _ = _simulated_measurement(_kernel_from_correlation(rho), size, quantile, rng)
        rho = np.clip(rho + (measured - rho_sim), -1, 1)
        rho[radius, radius] = 1.0
    kernel = _kernel_from_correlation(rho)
    _, variance_bias = _simulated_measurement(kernel, size, quantile, rng)
    variance = [pc[0][radius, radius] / max(variance_bias, 1e-3) for pc in per_channel]
    return kernel, variance, [pc[1] for pc in per_channel]


def _kernel_from_correlation(rho: np.ndarray, n: int = 32) -> np.ndarray:
    """A symmetric kernel whose autocorrelation is ``rho`` (unit L2 norm)."""
    return spectral_root(rho, rho.shape[0] // 2, n).astype(np.float32)


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


def _fit_line_nonnegative(x: np.ndarray, v: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    floor = 1e-6
    if x.size == 0:
        return 0.0, floor
    if x.size == 1 or np.ptp(x) < 1e-9:
        return 0.0, max(float(np.average(v, weights=w)), floor)
    sw = np.sqrt(w)
    design = np.stack([x, np.ones_like(x)], axis=1) * sw[:, None]
    a, b = np.linalg.lstsq(design, v * sw, rcond=None)[0]
    if a < 0:
        a, b = 0.0, float(np.average(v, weights=w))
    if b < floor:
        b = floor
        a = max(float(np.sum(w * x * (v - b)) / np.sum(w * x * x)), 0.0)
    return float(a), float(b)
