"""The noise model (variance as a function of signal, spatial correlation) and its estimation.

:meth:`NoiseLevel.estimate` fits the signal-dependent variance from the high-pass residue of
the image, then measures the noise's spatial correlation in the flattest windows and corrects
the biases of that measurement with simulated noise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from .correlation import (
    CORRELATION_THRESHOLD,
    Correlation,
    looks_correlated,
    measure_correlation,
)


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
    source: str = "fit"
    """Where it comes from: ``"fit"`` (fitted on the image) or ``"calibration"``."""
    correlation_unmeasured: bool = False
    """The noise looked correlated between neighbouring pixels, but no correlation that
    explains the image could be measured, so it was fitted as white noise: its variance is
    then mostly that of the noise's finest part, and may be several times too low."""

    def variance(self, signal: np.ndarray | Any, channel_axis: int = 1) -> Any:
        """Variance map for a ``(B, C, ...)`` torch tensor or numpy array of clean signal."""
        ndim = signal.ndim
        shape = [1] * ndim
        shape[channel_axis] = -1
        a = _like(signal, self.a).reshape(shape)
        b = _like(signal, self.b).reshape(shape)
        return a * signal.clamp(min=0) + b if hasattr(signal, "clamp") else \
            a * np.maximum(signal, 0) + b

    def scaled(self, k: float) -> NoiseLevel:
        """The same noise with ``k`` times its variance."""
        return dataclasses.replace(self, a=[v * k for v in self.a], b=[v * k for v in self.b],
                                   typical=[v * k for v in self.typical])

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
                    m, d = mean_and_detail(plane)
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
            a, b = fit_line_nonnegative(np.array(xs), np.array(vs), np.array(ws))
            a_out.append(a)
            b_out.append(b)
            typical.append(float(np.average(a * np.maximum(xs, 0) + b, weights=ws)) if xs else b)
        level = cls(a_out, b_out, typical)
        if not looks_correlated(blocks, rng):
            return level
        correlation = measure_correlation(blocks, rng)
        if correlation is None or correlation.neighbour < CORRELATION_THRESHOLD or \
                not _explains_differences(blocks, correlation):
            # seen by the detector, not measured (a weak correlation measured is white noise)
            level.correlation_unmeasured = correlation is None or \
                correlation.neighbour >= CORRELATION_THRESHOLD
            return level
        # High-pass statistics see little of correlated noise: rescale the fitted variance so
        # that it matches the variance measured in the noise-only windows.
        for c in range(channels):
            fitted = level.a[c] * max(correlation.mean[c], 0.0) + level.b[c]
            factor = correlation.variance[c] / max(fitted, 1e-12)
            level.a[c] = float(level.a[c] * factor)
            level.b[c] = float(level.b[c] * factor)
            level.typical[c] = float(level.typical[c] * factor)
        level.kernel = correlation.kernel.tolist()
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


SHAPE_TOLERANCE = 1.3
"""How far (as a ratio) the image's neighbour differences, relative to its high-pass detail,
may be from what a measured correlation predicts for it to be taken for the noise's."""


FAR_CORRELATION = 0.15
"""Mean correlation at the largest lags measured above which the windows are taken to hold
smooth signal rather than noise alone."""


def _robust_variance(values: np.ndarray) -> float:
    return float((1.4826 * np.median(np.abs(values - np.median(values)))) ** 2)


def _explains_differences(blocks: list[np.ndarray], correlation: Correlation) -> bool:
    """Whether the measured correlation explains how the image's pixels differ from their
    neighbours: the variance of neighbour differences over that of the high-pass detail of
    :func:`mean_and_detail` (both robust, so mostly noise) is ``2 (1 - rho(1))`` over
    ``sum(R * rho)`` for noise of correlation ``rho`` (``R``: the detail kernel's
    autocorrelation), 2 for white noise: edges finer than the windows measure a "correlation"
    that does not match. Smooth structure in the windows leaves both statistics alone but
    keeps the correlation high out to the largest lags, where noise's has died away."""
    r = correlation.rho.shape[0] // 2
    outer = np.ones_like(correlation.rho, bool)
    outer[1:-1, 1:-1] = False
    if float(np.mean(correlation.rho[outer])) > FAR_CORRELATION:
        return False  # still correlated at the largest lag: smooth signal in the windows
    h = _DETAIL_RESPONSE.shape[0] // 2
    detail_gain = float(np.sum(_DETAIL_RESPONSE * correlation.rho[r - h:r + h + 1,
                                                                   r - h:r + h + 1]))
    for c in range(blocks[0].shape[0]):
        planes = [p.astype(np.float64) for b in blocks for p in b[c] if min(p.shape) >= 3]
        detail = _robust_variance(np.concatenate([mean_and_detail(p)[1].ravel()
                                                  for p in planes]))
        for axis, rho in ((-1, correlation.rho[r, r + 1]), (-2, correlation.rho[r + 1, r])):
            seen = _robust_variance(np.concatenate([np.diff(p, axis=axis).ravel()
                                                    for p in planes])) / max(detail, 1e-30)
            predicted = 2 * (1 - rho) / max(detail_gain, 1e-12)
            if not 1 / SHAPE_TOLERANCE < predicted / seen < SHAPE_TOLERANCE:
                return False
    return True


_DETAIL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64) / 6.0
_DETAIL_RESPONSE = np.array([[np.sum(_DETAIL[max(dy, 0):3 + min(dy, 0), max(dx, 0):3 + min(dx, 0)]
                                     * _DETAIL[max(-dy, 0):3 + min(-dy, 0),
                                               max(-dx, 0):3 + min(-dx, 0)])
                              for dx in range(-2, 3)] for dy in range(-2, 3)])
"""The autocorrelation of the high-pass kernel of :func:`mean_and_detail` (lags -2..2): the
detail's variance for noise of autocovariance ``C`` is ``sum(_DETAIL_RESPONSE * C)``."""


def _like(ref: Any, values: list[float]) -> Any:
    if hasattr(ref, "new_tensor"):
        return ref.new_tensor(values)
    return np.asarray(values, dtype=np.float32)


def mean_and_detail(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 3x3 mean of ``plane`` and its high-pass detail (Immerkaer's kernel over 6: white
    noise of variance ``s²`` comes out with variance ``s²``), both without the border."""
    p = plane.astype(np.float32, copy=False)
    c = p[1:-1, 1:-1]
    n, s, w, e = p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]
    nw, ne, sw, se = p[:-2, :-2], p[:-2, 2:], p[2:, :-2], p[2:, 2:]
    detail = (4 * c - 2 * (n + s + w + e) + (nw + ne + sw + se)) / 6.0
    mean = (c + n + s + w + e + nw + ne + sw + se) / 9.0
    return mean, detail


def fit_line_nonnegative(x: np.ndarray, v: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted least-squares ``v = a x + b`` with ``a >= 0`` and ``b`` above a small floor."""
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


def signed(value: float) -> str:
    """``value`` as a term after another, its sign spelled out: ``"− 21.87"``, ``"+ 3"``."""
    return f"{'−' if value < 0 else '+'} {abs(value):.4g}"
