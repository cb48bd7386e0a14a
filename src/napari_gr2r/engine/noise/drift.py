"""Slow changes between repeated captures, which are not noise.

Repeated captures of a still field differ by more than their noise: the illumination drifts
unevenly over the field, the focus breathes, the sample bleaches faster where it is brighter.
Those differences vary slowly across the field, and a denoiser of one capture sees them as part
of its image, not as noise. A calibration that counted them would read the noise variance high
and add a correlation at every lag to its kernel. :func:`without_slow_changes`
takes them out of the captures' deviations: it subtracts each plane's Gaussian smoothing of
standard deviation :data:`SLOW_SD`, far wider than any camera's or scanner's noise correlation
(a few pixels); :func:`retained_share` is the share of the noise's own variance that the
subtraction keeps, so that the variance can be divided by it.
"""

from __future__ import annotations

import numpy as np

SLOW_SD = 16.0
"""Pixels: the standard deviation of the Gaussian whose smoothing of a capture's deviation
counts as a slow change of the field (the same scale the real-noise benchmarks' truths take
out of a capture's difference from the 50-capture average)."""


def _transfer(shape: tuple[int, int], sd: float) -> np.ndarray:
    """The Gaussian's transfer function on an ``rfft2`` grid of ``shape``."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    return np.exp(-2 * np.pi**2 * sd * sd * (fy * fy + fx * fx))


def _smooth(plane: np.ndarray, sd: float) -> np.ndarray:
    """Gaussian smoothing of a ``(Y, X)`` plane (reflected at the borders)."""
    ny, nx = plane.shape
    py, px = min(int(4 * sd), ny - 1), min(int(4 * sd), nx - 1)
    padded = np.pad(plane, ((py, py), (px, px)), mode="reflect")
    spec = np.fft.rfft2(padded) * _transfer(padded.shape, sd)
    return np.fft.irfft2(spec, s=padded.shape)[py:py + ny, px:px + nx]


def without_slow_changes(deviations: np.ndarray, keep: np.ndarray | None = None,
                         sd: float = SLOW_SD) -> np.ndarray:
    """``deviations`` ``(T, ..., Y, X)`` (float, changed in place and returned) less each YX
    plane's Gaussian smoothing of standard deviation ``sd``. With ``keep`` (``(..., Y, X)``,
    the same for every capture), the smoothing is of the kept pixels only (their weighted
    mean), so that pixels left out of the fit (saturated ones) do not leak into their
    neighbours'. One plane at a time, so that it needs little more memory than one plane."""
    for index in np.ndindex(deviations.shape[1:-2]):
        weight = None
        if keep is not None:
            w = np.asarray(keep[index], np.float64)
            weight = (w, np.maximum(_smooth(w, sd), 1e-6))
        for t in range(deviations.shape[0]):
            plane = deviations[(t, *index)]
            if weight is None:
                plane -= _smooth(plane, sd)
            else:
                plane -= _smooth(plane * weight[0], sd) / weight[1]
    return deviations


def retained_share(rho: np.ndarray, sd: float = SLOW_SD, n: int = 256) -> float:
    """The share of the variance of noise whose correlation between pixels is ``rho`` (odd
    square, 1 at the centre, lags beyond it taken as 0) that :func:`without_slow_changes`
    keeps: the mean of its spectrum times the high-pass's squared transfer, over the mean of
    its spectrum (the variance). About ``1 - 1/(4 pi sd²)`` for white noise; a little less for
    noise whose correlation gives it more power at low frequencies."""
    r = rho.shape[0] // 2
    grid = np.zeros((n, n))
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            grid[dy % n, dx % n] += rho[r + dy, r + dx]
    spectrum = np.fft.rfft2(grid).real
    weights = np.ones_like(spectrum)
    weights[:, 1:(n + 1) // 2] = 2.0  # the rfft grid's columns that stand for two frequencies
    high = (1.0 - _transfer((n, n), sd)) ** 2
    return float(np.sum(weights * spectrum * high) / max(float(np.sum(weights * spectrum)), 1e-30))
