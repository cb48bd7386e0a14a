"""What :func:`~napari_gr2r.engine.quality.estimate.assess` reports: the fitted noise and the estimate."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.normalization import Normalization
from ..noise.correlation import kernel_autocorrelation
from ..noise.level import NoiseLevel, mean_and_detail, signed
from ..noise.refit import VarianceCurve

LAG_RADIUS = 6
"""Lags (pixels) of the residual autocorrelation kept in the report."""


@dataclass
class FittedNoise:
    """The noise model fitted on the assessed image, in the input's intensity units.

    Per channel, ``variance(x) = gain * max(x, floor) + offset``; Gaussian noise has
    ``gain = 0``. ``kernel`` (unit L2 norm) makes white noise correlated like the noise, None
    for white noise.
    """

    gain: list[float]
    offset: list[float]
    floor: list[float]
    kernel: list[list[float]] | None
    level: NoiseLevel
    """The same model in the normalised units of :attr:`normalization`."""
    normalization: Normalization
    scatter: dict[str, list[float]] = field(default_factory=dict, repr=False)
    """Local mean and variance of the data behind the fit (channel 0, input units), to draw."""
    knots: dict[str, list[float]] = field(default_factory=dict, repr=False)
    """The variance measured per intensity bin (channel 0, input units), where it was
    refitted (white or weakly correlated noise); the estimate follows these, not the line."""
    curve: VarianceCurve | None = field(default=None, repr=False)
    spread: float = 0.0
    """Relative standard deviation of the noise variance: what the fit leaves uncertain (its
    bootstrap) and what fits like it are off by on images of known noise (see
    :data:`~napari_gr2r.engine.quality.estimate.SYSTEMATIC`)."""

    def variance(self, x: np.ndarray, channel: int = 0) -> np.ndarray:
        """Noise variance at clean intensity ``x`` (input units)."""
        x = np.maximum(np.asarray(x, np.float64), self.floor[channel])
        return self.gain[channel] * x + self.offset[channel]

    @property
    def sd(self) -> float:
        """Typical noise standard deviation over the image (first channel, input units)."""
        return math.sqrt(self.level.typical[0]) * self.normalization.scale(0)

    @property
    def neighbour_correlation(self) -> float:
        return self.level.neighbour_correlation

    def to_dict(self) -> dict[str, Any]:
        return {"gain": self.gain, "offset": self.offset, "floor": self.floor,
                "kernel": self.kernel, "sd": self.sd,
                "neighbour_correlation": self.neighbour_correlation,
                "source": self.level.source,
                "correlation_unmeasured": self.level.correlation_unmeasured}


@dataclass
class QualityReport:
    """What :func:`assess` found. Squared errors are in the input's intensity units."""

    mse: float
    """Estimated mean squared error of the denoised image against the unknown clean one."""
    noise: FittedNoise
    residual_structure: float
    """Share of the removed residual ``y - f(y)`` that is signal, not noise, in [0, 1]."""
    residual_mse: float
    """``mean((y - f(y))**2)``: what the denoiser removed."""
    noise_variance: float
    """Mean noise variance over the assessed pixels, ``tr(Σ) / N``."""
    divergence: float
    """``tr(Σ J) / N``: the noise the denoiser lets through, by Monte-Carlo."""
    propagated_noise: float
    """``tr(J Σ Jᵀ) / N``: the part of the error that is noise passed through."""
    mse_sd: float
    """Monte-Carlo standard error of :attr:`mse` from the probes (not the estimator's own
    spread, which falls as one over the square root of the pixel count)."""
    pixels: int
    probes: int
    data_range: float
    """The data's robust range (1st to 99.9th percentile, first channel)."""
    residual_autocorrelation: np.ndarray = field(repr=False, default_factory=lambda: np.ones((1, 1)))
    """Normalised autocorrelation of the residual, lags ``-LAG_RADIUS..LAG_RADIUS`` in Y, X."""
    model: str = ""
    """The denoiser assessed (a model's description)."""
    denoised: np.ndarray | None = field(default=None, repr=False)
    """The denoised image when ``keep_denoised=True`` (whole in-memory images only)."""
    mse_interval: tuple[float, float] = (math.nan, math.nan)
    """A 90 % interval ``(low, high)`` for :attr:`mse` (input units squared), from the noise
    fit's uncertainty (:attr:`FittedNoise.spread`) and the Monte-Carlo spread of the probes."""

    @property
    def signal_removed(self) -> bool:
        """True when the residual holds enough signal to warn about."""
        return self.residual_structure > STRUCTURE_WARNING

    @property
    def worse_than_input(self) -> bool:
        """True when even the low end of :attr:`mse_interval` exceeds the noise's variance: the
        denoised image is likely further from the clean one than the noisy input is."""
        return self.mse_interval[0] > self.noise_variance > 0

    @property
    def unresolved(self) -> bool:
        """True when the estimate fell to zero: the error is smaller than the estimate can tell
        from zero (its unbiased value came out negative), so only the interval's conservative
        end says something."""
        return self.mse <= 0

    def psnr(self, data_range: float | None = None) -> float:
        """The estimated error as a PSNR in dB for ``data_range`` (default: the data's); where
        the estimate is :attr:`unresolved`, the low end of :meth:`psnr_interval` (a conservative
        figure; NaN where the interval too reaches zero), never the infinite PSNR of a zero
        error."""
        rng = self.data_range if data_range is None else float(data_range)
        if self.unresolved:
            return self.psnr_interval(data_range)[0] if self.mse_interval[1] > 0 else math.nan
        return float(10 * math.log10(rng**2 / self.mse))

    def psnr_interval(self, data_range: float | None = None) -> tuple[float, float]:
        """The 90 % interval of the estimated PSNR in dB, ``(low, high)``, from
        :attr:`mse_interval`; ``high`` is infinite when the error may be near zero."""
        rng = self.data_range if data_range is None else float(data_range)
        low_mse, high_mse = self.mse_interval
        return (float(10 * math.log10(rng**2 / max(high_mse, 1e-30))),
                float(10 * math.log10(rng**2 / low_mse)) if low_mse > 0 else math.inf)

    def psnr_text(self, data_range: float | None = None, decimals: int = 2) -> str:
        """The estimated PSNR with its interval, as ``"<estimate> dB (likely <low>–<high>)"``,
        or ``"(likely <low> or better)"`` where the interval has no upper end (the error may be
        near zero)."""
        low, high = self.psnr_interval(data_range)
        value = self.psnr(data_range)
        point = f"{value:.{decimals}f} dB"
        if self.unresolved:
            why = "the error is too small for the estimate to resolve"
            return f"unresolved ({why})" if math.isnan(value) else f"{point} or better ({why})"
        if math.isnan(low):
            return point
        if not math.isfinite(high):
            return f"{point} (likely {low:.{decimals}f} or better)"
        return f"{point} (likely {low:.{decimals}f}–{high:.{decimals}f})"

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers (for a layer's metadata or JSON)."""
        return {"mse": self.mse, "psnr": self.psnr(), "data_range": self.data_range,
                "mse_interval": list(self.mse_interval),
                "psnr_interval": list(self.psnr_interval()), "mse_sd": self.mse_sd,
                "residual_structure": self.residual_structure,
                "residual_mse": self.residual_mse, "noise_variance": self.noise_variance,
                "pixels": self.pixels, "probes": self.probes, "model": self.model,
                "noise": self.noise.to_dict()}

    def summary(self) -> str:
        lines = [
            f"estimated PSNR {self.psnr_text()} (data range {self.data_range:.4g}); "
            f"estimated MSE {self.mse:.4g} ± {self.mse_sd:.2g} (probes)",
            f"noise: sd {self.noise.sd:.4g}, variance {self.noise.gain[0]:.4g}·x "
            f"{signed(self.noise.offset[0])}, neighbour correlation "
            f"{self.noise.neighbour_correlation:.2f}",
            f"residual: mean square {self.residual_mse:.4g} (noise {self.noise_variance:.4g}); "
            f"signal share {self.residual_structure:.2f}",
        ]
        if self.noise.level.correlation_unmeasured:
            lines.append(UNMEASURED_MESSAGE)
        if self.worse_than_input:
            lines.append(worse_message(self))
        if self.signal_removed:
            lines.append(STRUCTURE_MESSAGE)
        return "\n".join(lines)


STRUCTURE_WARNING = 0.3
UNMEASURED_MESSAGE = (
    "note: the noise looks correlated between neighbouring pixels, but its correlation could "
    "not be measured on this image, so it was fitted as white noise and its variance may be "
    "several times too low; the interval allows for that. For a tight estimate, calibrate the "
    "noise on repeated captures ('napari-gr2r calibrate') and pass it with --noise."
)

def worse_message(report: QualityReport) -> str:
    """The warning for a report :attr:`~QualityReport.worse_than_input`."""
    noisy = 10 * math.log10(report.data_range**2 / report.noise_variance)
    return (f"warning: the denoised image is likely worse than the noisy input ({report.psnr():.2f} "
            f"against about {noisy:.2f} dB for the input): its error is larger than the noise it "
            "was meant to remove. Do not use this result; an image whose intensities span many "
            "orders of magnitude (a few very bright spots on a dark background) is one such case.")


STRUCTURE_MESSAGE = (
    "warning: the removed residual holds image structure, not only noise: the denoiser is "
    "removing signal. Train for fewer steps or with a smaller network; a network still early in "
    "its training blurs too, so after only a few hundred steps, train longer instead."
)


Z90 = 1.6449
"""The normal quantile of a two-sided 90 % interval."""


def mse_interval(mse: float, noise_variance: float, divergence: float, mse_sd: float,
                 spread: float, sampling_sd: float = 0.0) -> tuple[float, float]:
    """A 90 % interval for an estimated MSE ``residual - noise_variance + 2 divergence``.

    Both noise terms are proportional to the fitted noise variance, so a relative error ``δ``
    in it moves the estimate by ``δ (2 divergence - noise_variance)``; with ``spread`` the
    relative standard deviation of that variance, ``mse_sd`` the probes' standard error and
    ``sampling_sd`` the estimator's own (:func:`sampling_sd`), the three add in quadrature
    (normal approximation).
    """
    mc = 0.0 if not math.isfinite(mse_sd) else mse_sd
    sd = math.hypot(abs(2 * divergence - noise_variance) * spread, mc, sampling_sd)
    low = mse - Z90 * sd
    return (low if low > 0 else 0.0, max(mse + Z90 * sd, 0.0))


def sampling_sd(mse: float, noise_variance: float, divergence: float, propagated: float,
                pixels: int, kernel: list[list[float]] | None = None) -> float:
    """The standard deviation of the estimate itself over draws of the noise, given the exact
    noise model: to first order (``f(y) - x ≈ J n + β``) the estimate less the true error is
    ``(nᵀ(I - 2J)n - tr Σ(I - 2J) - 2 βᵀn) / N``, whose variance is
    ``(2 tr((Σ(I - 2J))²) + 4 βᵀΣβ) / N²``; with ``tr(JᵀJ)σ² ≈ tr(JΣJᵀ)`` and ``‖β‖² ≈ MSE -
    tr(JΣJᵀ)/N`` that is ``(2σ⁴ (1 - 4d + 4p) g + 4σ² (MSE - pσ²)) / N`` for ``d``, ``p`` the
    divergence and the propagated noise over ``σ²`` and ``g`` the sum of the noise's squared
    correlations (1 for white noise): small images of strong noise cannot be assessed
    exactly, however well their noise is known."""
    var = max(noise_variance, 0.0)
    if var <= 0 or pixels <= 0:
        return 0.0
    d, p = divergence / var, propagated / var
    g = 1.0
    if kernel is not None:
        g = float(np.sum(kernel_autocorrelation(kernel, len(kernel) - 1) ** 2))
    term = 2 * var * var * max(1 - 4 * d + 4 * p, 0.0) * g + 4 * var * max(mse - propagated, 0.0)
    return math.sqrt(term / pixels)


def fitted_noise(level: NoiseLevel, norm: Normalization,
                 blocks: list[np.ndarray],
                 curve: VarianceCurve | None, spread: float = 0.0) -> FittedNoise:
    gain, offset, floor = [], [], []
    for c in range(len(level.a)):
        s, low = norm.scale(c), norm.low[c]
        # var_in = s^2 (a max((x - low)/s, 0) + b) = a s max(x, low) + b s^2 - a s low
        gain.append(float(level.a[c] * s))
        offset.append(float(level.b[c] * s * s - level.a[c] * s * low))
        floor.append(float(low))
    knots: dict[str, list[float]] = {}
    if curve is not None:
        s0, low0 = norm.scale(0), norm.low[0]
        knots = {"mean": [x * s0 + low0 for x in curve.x[0]],
                 "variance": [v * s0 * s0 for v in curve.v[0]]}
    return FittedNoise(gain, offset, floor, level.kernel, level, norm,
                       scatter=_scatter(blocks), knots=knots, curve=curve, spread=spread)


def _scatter(blocks: list[np.ndarray], points: int = 4000) -> dict[str, list[float]]:
    """Local 3x3 mean and high-pass variance estimate of channel 0 (what the fit sees)."""
    means, details = [], []
    for block in blocks:
        for plane in block[0]:
            if min(plane.shape) >= 3:
                m, d = mean_and_detail(plane)
                means.append(m.ravel())
                details.append(d.ravel())
    if not means:
        return {"mean": [], "variance": []}
    mean, detail = np.concatenate(means), np.concatenate(details)
    order = np.argsort(mean)
    groups = np.array_split(order, min(points // 20, max(1, len(order) // 64)))
    xs = [float(np.mean(mean[g])) for g in groups if len(g)]
    vs = [float(np.mean(detail[g].astype(np.float64) ** 2)) for g in groups if len(g)]
    return {"mean": xs, "variance": vs}
