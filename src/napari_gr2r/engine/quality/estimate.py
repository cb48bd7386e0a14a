r"""Trust without a clean image: estimate a denoiser's error from the noisy image alone.

For noise ``n = y - x`` of covariance ``Σ`` and a (weakly differentiable) denoiser ``f`` with
Jacobian ``J``, Stein's lemma gives ``E[nᵀ f(y)] = tr(Σ J)``, so that ::

    E ||f(y) - x||² = E ||f(y) - y||² - tr(Σ) + 2 tr(Σ J)

(SURE for white Gaussian noise, where ``Σ = σ² I``; with a signal-dependent variance
``Σ_ii = σ²(x_i) = a x_i + b`` this is the first-order form of the Poisson-Gaussian PG-URE; with
``Σ = D^½ K D^½``, ``K`` the noise's correlation between pixels, it is the generalised estimate for
correlated noise). Both noise terms come from the noise model fitted on the image being assessed
(:meth:`NoiseLevel.estimate <napari_gr2r.engine.noise.level.NoiseLevel.estimate>`: the variance function
from the high-pass residue, refitted by :func:`~napari_gr2r.engine.noise.refit.refit`: white
noise per intensity bin, or one level where it does not follow the intensity
(:func:`~napari_gr2r.engine.noise.global_level.refit_selected`); correlated noise's
autocovariance to lag 6 in windows chosen by the flatness of their surroundings):

- ``tr(Σ)``: the variance function at the local (5x5) mean of ``y``, summed over the pixels;
- ``tr(Σ J)``: by Monte-Carlo, ``E_c[cᵀ (f(y + ε c) - f(y)) / ε]`` with seeded probes
  ``c = σ(·) ⊙ (k * w)``, ``w`` white Gaussian and ``k`` the correlation kernel, so that
  ``Cov(c) = Σ``; the perturbed images go through the same tiled inference as ``denoise``.
  A model that averages ``V`` flips and turns (``tta``) gives ``f = (1/V) Σ_v f_v``, the mean
  of the tiled network through each view, so ``tr(Σ J) = (1/V) Σ_v tr(Σ J_v)``: each probe
  goes through one view (the probes take the views in a seeded random order, each view once
  before any twice), which is unbiased for the mean's divergence at one pass per probe
  instead of ``V``; ``f(y)`` is the mean of the ``V`` views' results, kept for the probes.

The same probes give ``tr(J Σ Jᵀ) = E||J c||²``, the part of the denoiser's error that is
propagated noise. To first order ``y - f(y) = (I - J) n - β`` with ``β = E f(y) - x`` the
signal lost by the denoiser (its bias), so :attr:`QualityReport.residual_structure` is
``β``'s share of the residual's energy, ``1 - E||(I - J) c||² / ||y - f(y)||²`` (clipped to
[0, 1]): 0 when what was removed is the noise and nothing else, near 1 when it is mostly image.

Examples
--------
>>> report = assess(model, noisy, axes="YX")          # doctest: +SKIP
>>> report.mse, report.psnr(data_range=255)           # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..data.context import centre_of, context_source
from ..data.normalization import Normalization
from ..errors import InputError
from ..inference.memory import to_input_layout
from ..inference.tiling import tta_views
from ..io.sources import ImageSource
from ..model.model import GR2RModel
from ..noise.calibration import NoiseCalibration
from ..noise.global_level import refit_selected
from ..noise.level import NoiseLevel
from ..noise.refit import VarianceCurve
from .denoisers import Denoiser, around, denoiser_for
from .report import (
    LAG_RADIUS,
    STRUCTURE_MESSAGE,
    STRUCTURE_WARNING,
    FittedNoise,
    QualityReport,
    fitted_noise,
    mse_interval,
    sampling_sd,
)
from .risk import EPSILON, probe, variance_map

__all__ = ["STRUCTURE_MESSAGE", "STRUCTURE_WARNING", "FittedNoise", "QualityReport", "assess",
           "fit_noise"]

DEFAULT_PROBES = 4
MAX_PIXELS = 2**20
"""Pixels assessed at most (larger images: random crops of that many pixels in all)."""
CROP = 256
SYSTEMATIC = {"white": 0.13, "correlated": 0.4, "model": 0.15, "given": 0.0,
              "calibration": 0.03, "unmeasured": 10.0}
"""Relative standard deviation of the noise variance added (in quadrature) to the fit's own
bootstrap spread for the interval: what fits of each kind are off by on images of known noise,
the 90th percentile of the error over 1.645 for white noise (``"white"``: the refit; ``"model"``:
the training's high-pass fit), about the median error for correlated noise, and for a
calibration from four captures what real captures' estimates need beyond the calibration's own
bootstrap spread: the smallest allowance, in steps of 1 %, that keeps the truth inside the
interval on as many of the development captures as 4 % does (one capture's own variance
strays from its configuration's calibration by less than that; the rest of their estimates'
error comes from elsewhere;
docs/estimate-accuracy.md gives the figures and commands). A noise model given by the caller is
taken as exact. Where two fits of white noise were made and disagree by more than ``"white"`` on
the image, their disagreement takes its place. Where the noise looked correlated but its
correlation could not be measured (``NoiseLevel.correlation_unmeasured``), the white fit reads
only the noise's finest part: ``"unmeasured"`` allows for a variance up to 17 times the fit's
(1 + 1.645 × 10), what such fits were off by on images of known noise."""

# --------------------------------------------------------------------------------------------


def assess(model: GR2RModel | Denoiser, noisy: Any, axes: str | None = None, *,
           probes: int = DEFAULT_PROBES, epsilon: float = EPSILON, seed: int = 0,
           noise: str | NoiseLevel | NoiseCalibration = "fit", max_pixels: int = MAX_PIXELS,
           tile: int | tuple[int, ...] | None = None, batch_size: int = 4,
           device: str = "auto", keep_denoised: bool = False,
           should_stop: Callable[[], bool] | None = None,
           tta: bool | int | None = None) -> QualityReport:
    """Estimate the mean squared error of ``denoise(model, noisy)`` without a clean image.

    Parameters
    ----------
    model : GR2RModel or callable
        A trained model, or any denoiser taking and returning a ``(C, Z, Y, X)`` float32
        block in the input's intensity units.
    noisy : numpy, dask or zarr array
        Read block by block; never modified. Images of more than ``max_pixels`` pixels are
        assessed on seeded random crops of that many pixels in all.
    axes : str, optional
        Defaults to the model's axes.
    probes, epsilon : int, float
        Monte-Carlo probes of the divergence and their step (a fraction of the noise).
    seed : int
        Seeds the crops, the noise fit and the probes: the same call gives the same report.
    noise : "fit", "model", NoiseCalibration or NoiseLevel
        Fit the noise on this image (default), use the model's own noise model, a
        calibration (:func:`~napari_gr2r.engine.calibrate_noise`, input units), or a given
        noise model (in the normalised units of the model).
    tile, batch_size, device
        As for :func:`~napari_gr2r.engine.denoise`.
    keep_denoised : bool
        Keep the denoised image in the report (only when the whole image is assessed).
    should_stop : callable, optional
        Polled before each pass through the denoiser; when it returns True,
        :class:`InterruptedError` is raised.
    tta : bool, int or None
        The flips and quarter turns the model's denoising averages, as for
        :func:`~napari_gr2r.engine.denoise` (the model's own by default): the estimate is of
        the result ``denoise`` gives with the same ``tta``.
    """
    if probes < 1:
        raise ValueError("probes must be at least 1")
    views = tta_views(tta, model) if isinstance(model, GR2RModel) else 1
    source, net_model, denoiser, name = denoiser_for(model, noisy, axes, tile, batch_size,
                                                     device, should_stop, views)
    rng = np.random.default_rng(seed)
    margin = _margin(net_model)
    # a model with context reads each plane with its neighbours; the centre is assessed
    context = net_model.config.context if net_model is not None else 0
    stacks = _select_blocks(
        context_source(source, context, net_model.dims) if net_model is not None else source,
        max_pixels, rng, margin, margin if net_model is not None and net_model.dims == 3 else 0)
    blocks = [(centre_of(b[None], net_model.channels)[0], i) for b, i in stacks] \
        if net_model is not None and context else stacks
    norm = net_model.normalization if net_model is not None else \
        Normalization.fit([b for b, _ in blocks])
    level, curve = _noise_level(noise, net_model, norm, blocks, rng)
    if should_stop is not None and should_stop():  # the fit is long on large images
        raise InterruptedError("The assessment was stopped.")
    fitted = fitted_noise(level, norm, [b for b, _ in blocks], curve,
                          spread=_noise_spread(noise, level, curve))
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    sums = _Sums(probes)
    for (block, inner), (stack, _) in zip(blocks, stacks):
        sums.add(around(denoiser, stack, block.shape[0]) if context else denoiser, block,
                 inner, level, norm, curve, gen, epsilon, keep_denoised, views)
    denoised = None
    if keep_denoised and all(_whole(i) for _, i in blocks) and \
            len(blocks) == source.n_samples:
        denoised = to_input_layout(np.stack(sums.denoised), source.info)
    return sums.report(fitted, norm.scale(0), name, denoised)


class _Sums:
    """The sums over the assessed pixels that the estimate is made of."""

    def __init__(self, probes: int) -> None:
        self.n, self.res, self.var = 0, 0.0, 0.0
        self.div, self.prop, self.leak = np.zeros(probes), np.zeros(probes), np.zeros(probes)
        self.acf = np.zeros((2 * LAG_RADIUS + 1,) * 2)
        self.denoised: list[np.ndarray] = []

    def add(self, denoiser: Denoiser, block: np.ndarray, inner: Inner, level: NoiseLevel,
            norm: Normalization, curve: VarianceCurve | None, gen: torch.Generator,
            epsilon: float, keep: bool, views: int = 1) -> None:
        """Denoise ``block`` and its probed copies; add what its ``inner`` pixels give.

        ``views`` > 1: ``denoiser(block, view)`` is the network through one view, the result
        their mean, and each probe goes through one view (the module's docstring says why).
        """
        if views > 1:
            each = [np.asarray(denoiser(block, v), np.float32) for v in range(views)]
            fy = np.mean(each, axis=0, dtype=np.float32)
            order = [int(v) for _ in range(-(-len(self.div) // views))
                     for v in torch.randperm(views, generator=gen)]
        else:
            fy = np.asarray(denoiser(block), np.float32)
        if keep:
            self.denoised.append(fy)
        variance = variance_map(block, level, norm, curve)
        sd = np.sqrt(variance)
        residual = (block - fy)[inner]
        self.n += residual.size
        self.res += float(np.sum(residual.astype(np.float64) ** 2))
        self.var += float(np.sum(variance[inner]))
        self.acf += _autocorrelation(residual)
        for k in range(len(self.div)):
            c = probe(sd, level.kernel, gen)
            view, base = ((order[k],), each[order[k]]) if views > 1 else ((), fy)
            jc = (np.asarray(denoiser(block + epsilon * c, *view), np.float32) - base) / epsilon
            c_in, jc_in = c[inner].astype(np.float64), jc[inner].astype(np.float64)
            self.div[k] += float(np.sum(c_in * jc_in))
            self.prop[k] += float(np.sum(jc_in**2))
            self.leak[k] += float(np.sum((c_in - jc_in) ** 2))

    def report(self, fitted: FittedNoise, data_range: float, name: str,
               denoised: np.ndarray | None) -> QualityReport:
        n = self.n
        residual_mse, noise_variance = self.res / n, self.var / n
        div, prop, leak = self.div / n, self.prop / n, self.leak / n
        mse_k = residual_mse - noise_variance + 2 * div
        mse = float(np.mean(mse_k))
        probes = len(div)
        mse_sd = float(np.std(mse_k, ddof=1) / math.sqrt(probes)) if probes > 1 else float("nan")
        structure = 0.0 if residual_mse <= 1e-12 * max(noise_variance, 1e-30) else \
            float(np.clip(1 - np.mean(leak) / residual_mse, 0.0, 1.0))
        sampling = sampling_sd(mse, noise_variance, float(np.mean(div)),
                               float(np.mean(prop)), n, fitted.kernel)
        interval = mse_interval(mse, noise_variance, float(np.mean(div)), mse_sd,
                                fitted.spread, sampling)
        return QualityReport(
            mse=max(mse, 0.0), noise=fitted, residual_structure=structure,
            residual_mse=residual_mse, noise_variance=noise_variance,
            divergence=float(np.mean(div)), propagated_noise=float(np.mean(prop)),
            mse_sd=mse_sd, pixels=n, probes=probes, data_range=data_range,
            residual_autocorrelation=self.acf / max(self.acf[LAG_RADIUS, LAG_RADIUS], 1e-30),
            model=name, denoised=denoised, mse_interval=interval,
        )


def fit_noise(data: Any, axes: str, *, seed: int = 0, max_pixels: int = MAX_PIXELS,
              noise: str | NoiseCalibration = "fit") -> FittedNoise:
    """The noise model :func:`assess` would fit on ``data``, without a denoiser; with a
    calibration as ``noise``, that calibration over ``data``'s pixels (what
    ``assess(..., noise=calibration)`` uses)."""
    source = ImageSource(data, axes)
    rng = np.random.default_rng(seed)
    blocks = _select_blocks(source, max_pixels, rng, 0)
    norm = Normalization.fit([b for b, _ in blocks])
    level, curve = _noise_level(noise, None, norm, blocks, rng)
    return fitted_noise(level, norm, [b for b, _ in blocks], curve,
                        spread=_noise_spread(noise, level, curve))


# --------------------------------------------------------------------------------------------


def _margin(model: GR2RModel | None) -> int:
    if model is None:
        return 16
    return int(getattr(model.net, "receptive_radius", 32))


Inner = tuple[slice, ...]


def _whole(inner: Inner) -> bool:
    return all(s == slice(None) for s in inner)


def _select_blocks(source: ImageSource, max_pixels: int, rng: np.random.Generator,
                   margin: int, margin_z: int = 0) -> list[tuple[np.ndarray, Inner]]:
    """``(block (C, Z, Y, X) in input units, the slices of it that are assessed)``.

    The whole image when it has at most ``max_pixels`` pixels; else seeded random crops, each
    an assessed window placed uniformly in the image plus a border (``margin`` pixels, the
    network's reach; ``margin_z`` in Z for a 3D network) that is denoised but not assessed.
    """
    c, nz, ny, nx = source.czyx
    total = source.n_samples * c * nz * ny * nx
    if total <= max_pixels:
        return [(source.read(s), (slice(None),) * 4) for s in range(source.n_samples)]
    blocks: list[tuple[np.ndarray, Inner]] = []
    side = int(np.clip(math.isqrt(max(max_pixels, 1) // 4), 32, CROP))  # four crops at least
    done = 0
    while done < max_pixels and len(blocks) < 256:
        s = int(rng.integers(source.n_samples))
        spans, inner = [], [slice(None)]
        for n, size, reach in ((nz, 8, margin_z), (ny, side, margin), (nx, side, margin)):
            size = min(n, size)
            start = int(rng.integers(n - size + 1))
            lo, hi = max(0, start - reach), min(n, start + size + reach)
            spans.append(slice(lo, hi))
            inner.append(slice(start - lo, start - lo + size))
        block = source.read(s, *spans)
        blocks.append((block, tuple(inner)))
        done += block[tuple(inner)].size
    return blocks


def _noise_level(noise: str | NoiseLevel | NoiseCalibration, model: GR2RModel | None,
                 norm: Normalization, blocks: list[tuple[np.ndarray, Inner]],
                 rng: np.random.Generator) -> tuple[NoiseLevel, VarianceCurve | None]:
    if isinstance(noise, NoiseLevel):
        return noise, None
    if isinstance(noise, NoiseCalibration):
        if len(noise.gain) != len(norm.low):
            raise InputError(f"The noise calibration has {len(noise.gain)} channel(s), the "
                             f"image {len(norm.low)}: calibrate on captures of this camera "
                             "with the same channels.")
        return noise.level(norm, [b for b, _ in blocks]), noise.curve(norm)
    if noise == "model":
        if model is None:
            raise ValueError("noise='model' needs a GR2RModel")
        return model.noise_level, None
    if noise != "fit":
        raise ValueError("noise must be 'fit', 'model', a NoiseCalibration or a NoiseLevel, "
                         f"not {noise!r}")
    normalised = [norm.apply(b) for b, _ in blocks]
    return refit_selected(NoiseLevel.estimate(normalised, rng), normalised, rng)


def _noise_spread(noise: Any, level: NoiseLevel, curve: VarianceCurve | None) -> float:
    """The relative uncertainty of the noise variance ``noise`` gives (see SYSTEMATIC)."""
    if isinstance(noise, NoiseCalibration):
        return math.hypot(noise.spread, SYSTEMATIC["calibration"])
    if isinstance(noise, NoiseLevel):
        return SYSTEMATIC["given"]
    if noise == "model":
        return SYSTEMATIC["model"]
    if curve is None:
        return SYSTEMATIC["correlated"]
    if level.correlation_unmeasured:
        return SYSTEMATIC["unmeasured"]
    # where two fits were made, their disagreement on this image when it exceeds what fits
    # are off by on images of known noise
    disagreement = float(np.max(curve.disagreement)) if curve.disagreement else 0.0
    return math.hypot(float(np.max(curve.spread)) if curve.spread else 0.0,
                      max(SYSTEMATIC["white"], disagreement))


def _autocorrelation(residual: np.ndarray) -> np.ndarray:
    """Sum over the YX planes of the residual's autocovariance at lags up to LAG_RADIUS."""
    r = LAG_RADIUS
    planes = residual.reshape(-1, *residual.shape[-2:]).astype(np.float64)
    ny, nx = planes.shape[-2:]
    planes = planes - planes.mean(axis=(-2, -1), keepdims=True)
    spec = np.fft.rfft2(planes, s=(ny + r, nx + r))
    acov = np.fft.irfft2(np.abs(spec) ** 2, s=(ny + r, nx + r)).sum(axis=0)
    acov = np.fft.fftshift(acov)
    cy, cx = (ny + r) // 2, (nx + r) // 2
    return acov[cy - r:cy + r + 1, cx - r:cx + r + 1] / (ny * nx)
