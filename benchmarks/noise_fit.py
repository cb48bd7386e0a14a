"""How close noise fits come to the true noise variance, on a development set of known noise.

Clean images: the bundled ``fmd_confocal`` sample's reference (not ``nuclei3d``'s, blurred random
texture, correlated noise by construction, nor ``nuclei2d``'s, a single micrograph on which,
binned and scaled as below, ``liu2013`` finds a noise variance of its own of 384: 96 % of the
lowest Gaussian level's 400, so that half of its truth would be unknown; on the other
references it finds camera 1.4, cell 0.3, moon 7.7, coins 31, fmd_confocal 0.5),
scikit-image's ``camera``, ``coins``, ``moon`` and ``cell``, and three ground truths of the FMD
BPAE set (``/work/shared/data/fmd-bpae``, or ``--fmd``; never the held-out mouse-brain or
zebrafish captures), each binned 2x2 (real images hold noise of their own: binning quarters
its variance), a centre crop of ``--size`` pixels of that, scaled to 0..1000. Noises, each at
three levels and ``--seeds`` seeds:

- ``gaussian``: white, sd 2, 5 and 10 % of the range;
- ``poisson-gaussian``: a peak of 10, 30 and 100 photons (scaled back to 0..1000), read noise
  sd 2 photons, an offset of 100;
- ``clipped``: the same without the offset, clipped at 0 (the dark background clips) and at
  90 % of the peak (the brightest pixels saturate);
- ``correlated``: white Gaussian noise (sd 2, 5, 10 %) filtered along X by ``[1, 2, 1]`` and
  along Y by ``[1, 1]`` (unit L2 norm);
- ``weak``: white Gaussian noise (sd 2, 5, 10 %) filtered along X by ``[c, 1, c]`` and along Y
  by ``[d, 1, d]`` (unit L2 norm) for a neighbour correlation of 0.09 along X and 0.05 along Y,
  what the FMD confocal captures' noise has (``--detection``): below the 0.2 at which noise
  counts as correlated, so fitted as white noise.

The truth is the mean over the image of each pixel's noise variance: exact for all but
``clipped``; for ``clipped``, the per-pixel variance over 16 extra draws. The FMD ground truths
hold 1/50 of a capture's noise variance: that remainder (``mean((raw - gt)²) / 50``, scaled) is
added to the truth. What is scored is the relative error of the mean variance a fit gives over
the image's pixels (its variance function at each pixel's local mean): the ``tr(Σ)/N`` of the
error estimate, whose error moves the estimate most.

Held-out images (``--held-out``; scored once, never tuned on): scikit-image's ``astronaut``,
``brick``, ``grass``, ``gravel``, ``text``, ``rocket`` and ``hubble_deep_field`` (colour ones
made grey), prepared the same way, their own noise unknown (taken as none).

Estimators:

- ``refit``: what :func:`napari_gr2r.engine.assess` uses: ``bins``, or where their line is
  flat (no significant gain: Gaussian noise), ``liu2013``'s single level;
- ``bins``: a patch-PCA noise variance per
  intensity bin, weak-texture patches as Liu, Tanaka & Okutomi 2013 pick them, the noise
  subspace as Chen, Zhu & Heng 2015 bound it; correlated noise: its autocovariance in
  noise-only windows);
- ``refit_min``, ``bins_min``: the same, each bin's variance the lower of Chen et al.'s bound
  and the mean of the smallest tenth of the eigenvalues
  (:data:`napari_gr2r.engine.noise.refit.SMALLEST`; not the default);
- ``highpass``: the training's fit (robust variance of the high-pass residue per intensity bin,
  a line through the bins);
- ``liu2013``: one global level, the smallest eigenvalue of the weak-texture patches'
  covariance, iterated, corrected on simulated noise (Liu et al. 2013);
- ``chen2015``: one global level from all patches, the noise subspace's mean eigenvalue (Chen
  et al. 2015);
- ``foi2008``: Foi, Trimeche, Katkovnik & Egiazarian 2008's Poisson-Gaussian fit in outline:
  one level of a Haar transform (the detail coefficients hold the noise, the approximation the
  local mean), smooth coefficients kept where the smoothed approximation's Laplacian and
  gradient stay under what noise alone gives (their 90th percentile, scaled by the current
  fit's noise at that intensity), level sets of about 400 of them by intensity, each set's
  sample variance of the details, and the maximum-likelihood line through them (twice, the
  second pass selecting with the first line); no clipping model (the score is the variance
  the clipped noise has).
- ``liu_poly``: ``liu2013``'s level on the image's four polyphase sub-images (every other pixel
  along Y and X), which weak correlation between neighbours does not bias; ``liu_hybrid``: that
  level where it reads 1.2-1.45 times the whole image's, else the whole image's (both measured,
  not used by the engine: ``benchmarks/results/noise_fit.md``).

    python -m benchmarks.noise_fit --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from napari_gr2r.engine.data.normalization import Normalization
from napari_gr2r.engine.noise import refit as refit_module
from napari_gr2r.engine.noise.global_level import liu_level, refit_selected
from napari_gr2r.engine.noise.level import NoiseLevel
from napari_gr2r.engine.noise.refit import refit
from napari_gr2r.engine.quality.risk import variance_map

FMD = Path("/work/shared/data/fmd-bpae")
FMD_GT = ["Confocal_BPAE_G", "TwoPhoton_BPAE_B", "WideField_BPAE_R"]
SKIMAGE = ["camera", "coins", "moon", "cell"]
HELD_OUT = ["astronaut", "brick", "grass", "gravel", "text", "rocket", "hubble_deep_field"]
BUNDLED = ["fmd_confocal"]
LEVELS = {"gaussian": (0.02, 0.05, 0.10), "poisson-gaussian": (10, 30, 100),
          "clipped": (10, 30, 100), "correlated": (0.02, 0.05, 0.10),
          "weak": (0.02, 0.05, 0.10)}
READ = 2.0
KERNEL = np.outer([1.0, 1.0], [1.0, 2.0, 1.0])
KERNEL /= np.sqrt(np.sum(KERNEL**2))


def _three_tap(rho: float) -> np.ndarray:
    """``[c, 1, c]`` whose neighbour correlation is ``rho`` (``2c / (1 + 2c²)``)."""
    c = (1 - np.sqrt(1 - 2 * rho * rho)) / (2 * rho)
    return np.array([c, 1.0, c])


WEAK = np.outer(_three_tap(0.05), _three_tap(0.09))
WEAK /= np.sqrt(np.sum(WEAK**2))


def _crop(image: np.ndarray, size: int) -> np.ndarray:
    ny, nx = image.shape
    y0, x0 = (ny - min(ny, size)) // 2, (nx - min(nx, size)) // 2
    return image[y0:y0 + size, x0:x0 + size].astype(np.float64)


def clean_images(size: int, fmd: Path, held_out: bool = False,
                 ) -> dict[str, tuple[np.ndarray, float]]:
    """``name -> (clean image scaled to 0..1000, its own noise variance in those units)``:
    the development set's images, or the held-out ones."""
    import skimage.data

    from napari_gr2r.sample_data import load_sample

    out: dict[str, tuple[np.ndarray, float]] = {}
    if held_out:
        from skimage.color import rgb2gray

        for name in HELD_OUT:
            image = np.asarray(getattr(skimage.data, name)())
            out[name] = (rgb2gray(image) if image.ndim == 3 else image.astype(np.float64), 0.0)
        return _prepared(out, size)
    for name in BUNDLED:
        _, clean, _ = load_sample(name)
        clean = np.asarray(clean, np.float64)
        out[name] = (clean, 0.0)
    for name in SKIMAGE:
        out[name] = (np.asarray(getattr(skimage.data, name)(), np.float64), 0.0)
    for name in FMD_GT:
        gt = _png(fmd / "gt" / f"{name}_1.png")
        raw = _png(fmd / "raw" / f"{name}_1.png")
        out[f"fmd_{name}"] = (gt, float(np.mean((raw - gt) ** 2)) / 50)
    return _prepared(out, size)


def _prepared(out: dict[str, tuple[np.ndarray, float]], size: int,
              ) -> dict[str, tuple[np.ndarray, float]]:
    """Each image binned 2x2, cropped and scaled to 0..1000 (its own noise with it)."""
    scaled = {}
    for name, (image, own) in out.items():
        ny, nx = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
        image = image[:ny, :nx].reshape(ny // 2, 2, nx // 2, 2).mean(axis=(1, 3))
        own /= 4
        image = _crop(image, size)
        lo, hi = float(image.min()), float(image.max())
        k = 1000.0 / max(hi - lo, 1e-12)
        scaled[name] = ((image - lo) * k, own * k * k)
    return scaled


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path), np.float64)


def _correlate(white: np.ndarray, kernel: np.ndarray = KERNEL) -> np.ndarray:
    ky, kx = kernel.shape
    view = np.lib.stride_tricks.sliding_window_view(white, kernel.shape)
    return np.einsum("ijkl,kl->ij", view, kernel)[: white.shape[0] - ky + 1,
                                                    : white.shape[1] - kx + 1]


def add_noise(clean: np.ndarray, kind: str, level: float, rng: np.random.Generator,
              ) -> tuple[np.ndarray, float]:
    """A noisy image and the true mean noise variance over its pixels."""
    if kind == "gaussian":
        sd = level * 1000
        return clean + rng.normal(0, sd, clean.shape), sd * sd
    if kind in ("correlated", "weak"):
        sd = level * 1000
        kernel = KERNEL if kind == "correlated" else WEAK
        ky, kx = kernel.shape
        white = rng.standard_normal((clean.shape[0] + ky - 1, clean.shape[1] + kx - 1))
        return clean + sd * _correlate(white, kernel), sd * sd
    scale = 1000.0 / level  # grey levels per photon
    photons = clean / scale
    if kind == "poisson-gaussian":
        noisy = (rng.poisson(photons) + rng.normal(0, READ, clean.shape) + 100) * scale
        return noisy, float(np.mean(photons + READ**2)) * scale * scale

    def draw() -> np.ndarray:
        counts = rng.poisson(photons) + rng.normal(0, READ, clean.shape)
        return np.clip(counts, 0, 0.9 * level) * scale

    truth = np.var(np.stack([draw() for _ in range(16)]), axis=0, ddof=1).mean()
    return draw(), float(truth)


# --------------------------------------------------------------------------------------------
# estimators: each returns the mean noise variance over the image's pixels (input units)


def _normalised(noisy: np.ndarray) -> tuple[np.ndarray, Normalization]:
    block = noisy[None, None].astype(np.float32)
    norm = Normalization.fit([block])
    return block, norm


def _refitted(noisy: np.ndarray, rng: np.random.Generator, fit=refit_selected,
              **options) -> float:
    """The mean variance of ``fit`` (``refit_selected``, what ``assess`` uses, or ``refit``,
    the variance per intensity bin alone) started from the highpass level."""
    block, norm = _normalised(noisy)
    blocks = [norm.apply(block)]
    level, curve = fit(NoiseLevel.estimate(blocks, rng), blocks, rng, **options)
    return float(variance_map(block, level, norm, curve).mean())


MIN_SUBSPACES = ("chen", refit_module.SMALLEST)


def est_refit(noisy: np.ndarray, rng: np.random.Generator) -> float:
    return _refitted(noisy, rng)


def est_bins(noisy: np.ndarray, rng: np.random.Generator) -> float:
    """The refit's variance per intensity bin alone (``refit`` before the selection)."""
    return _refitted(noisy, rng, refit)


def est_refit_min(noisy: np.ndarray, rng: np.random.Generator) -> float:
    """``refit`` with each bin's variance the lower of two bounds of the noise subspace."""
    return _refitted(noisy, rng, subspaces=MIN_SUBSPACES)


def est_bins_min(noisy: np.ndarray, rng: np.random.Generator) -> float:
    """``bins`` with each bin's variance the lower of two bounds of the noise subspace."""
    return _refitted(noisy, rng, refit, subspaces=MIN_SUBSPACES)


def est_highpass(noisy: np.ndarray, rng: np.random.Generator) -> float:
    block, norm = _normalised(noisy)
    level = NoiseLevel.estimate([norm.apply(block)], rng)
    return float(variance_map(block, level, norm, None).mean())


def _global_pca(noisy: np.ndarray, rng: np.random.Generator, smallest: bool) -> float:
    m = refit_module
    patches, _ = m._patches([noisy], 60_000, rng)
    null, _ = m._patches([rng.standard_normal((192, 192))], 60_000, rng)
    q99 = float(np.quantile(m._texture(null), 0.99))

    def level(p: np.ndarray) -> float:
        lam = np.sort(np.linalg.eigvalsh(np.cov(p.T)))[::-1]
        if smallest:
            return float(lam[-1])
        for i in range(len(lam)):  # Chen et al.: the noise subspace's mean eigenvalue
            if np.mean(lam[i:]) <= np.median(lam[i:]):
                return float(np.mean(lam[i:]))
        return float(lam[-1])

    def measure(p: np.ndarray) -> float:
        variance = level(p)
        if not smallest:
            return variance
        texture = m._texture(p)
        for _ in range(3):
            sel = texture < variance * q99
            if sel.sum() < 4 * m.PATCH * m.PATCH:
                break
            variance = level(p[sel])
        return variance

    return measure(patches) / measure(null)


def est_liu2013(noisy: np.ndarray, rng: np.random.Generator) -> float:
    return _global_pca(noisy, rng, smallest=True)


def est_chen2015(noisy: np.ndarray, rng: np.random.Generator) -> float:
    return _global_pca(noisy, rng, smallest=False)


def est_liu_poly(noisy: np.ndarray, rng: np.random.Generator) -> float:
    """Liu et al.'s level (as ``refit`` computes it) on the image's four polyphase sub-images
    (every other pixel along Y and X): pixels two apart, whose noise no longer shares a
    correlation between neighbours, but whose signal is twice as rough."""
    return liu_level(_polyphase(noisy), rng)


def _polyphase(image: np.ndarray) -> list[np.ndarray]:
    """The four sub-images of every other pixel along Y and X (Liu's level reads any units)."""
    plane = np.asarray(image, np.float64)
    return [plane[i::2, j::2] for i in range(2) for j in range(2)]


HYBRID_BAND = (1.2, 1.45)
"""The ratio of ``liu_poly``'s level to the whole image's within which ``liu_hybrid`` takes the
polyphase one (fixed before it was run)."""


def est_liu_hybrid(noisy: np.ndarray, rng: np.random.Generator) -> float:
    """``liu_poly`` where it reads within HYBRID_BAND times Liu's level on the whole image (weakly
    correlated noise reads about 1.4 times), else the whole image's level."""
    full = liu_level([np.asarray(noisy, np.float64)], np.random.default_rng(rng.integers(2**31)))
    poly = liu_level(_polyphase(noisy), rng)
    return poly if HYBRID_BAND[0] <= poly / max(full, 1e-30) <= HYBRID_BAND[1] else full


def _haar(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One level of a Haar transform: the 2x2 means, and the diagonal details (unit L2 norm,
    so white noise keeps its variance in them)."""
    h, w = z.shape[0] // 2 * 2, z.shape[1] // 2 * 2
    a, b, c, d = z[0:h:2, 0:w:2], z[0:h:2, 1:w:2], z[1:h:2, 0:w:2], z[1:h:2, 1:w:2]
    return (a + b + c + d) / 4, (a - b - c + d) / 2


def _smoothness(approx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from scipy import ndimage

    smooth = ndimage.uniform_filter(approx, 3, mode="reflect")
    laplace = np.abs(ndimage.laplace(smooth, mode="reflect"))
    gy, gx = np.gradient(smooth)
    return smooth, laplace, np.hypot(gx, gy)


def _ml_line(y: np.ndarray, s2: np.ndarray, n: np.ndarray) -> tuple[float, float]:
    """The line ``a y + b`` that makes the sample variances ``s2`` (of ``n`` values each) most
    likely (each a scaled chi-square of ``n - 1`` degrees of freedom)."""
    from scipy import optimize

    def nll(p: np.ndarray) -> float:
        v = np.maximum(p[0] * y + p[1], 1e-12)
        return float(np.sum((n - 1) / 2 * (s2 / v + np.log(v))))

    design = np.stack([y, np.ones_like(y)], 1) * np.sqrt(n)[:, None]
    start = np.linalg.lstsq(design, s2 * np.sqrt(n), rcond=None)[0]
    start = np.maximum(start, [0.0, 1e-9 * max(float(s2.max()), 1e-12)])
    best = optimize.minimize(nll, start, method="Nelder-Mead",
                             options={"xatol": 1e-10, "fatol": 1e-10, "maxiter": 4000})
    return float(best.x[0]), float(best.x[1])


FOI_SET = 400
"""``foi2008``: coefficients per level set."""


def est_foi2008(noisy: np.ndarray, rng: np.random.Generator) -> float:
    """Foi et al. (2008)'s fit in outline (the module docstring); deterministic, so ``rng``
    is unused."""
    from scipy import ndimage

    z = np.asarray(noisy, np.float64)
    approx, detail = _haar(z)
    smooth, laplace, gradient = _smoothness(approx)
    null_approx, _ = _haar(np.random.default_rng(123).standard_normal(z.shape))
    _, null_laplace, null_gradient = _smoothness(null_approx)
    q_laplace, q_gradient = np.quantile(null_laplace, 0.9), np.quantile(null_gradient, 0.9)
    sigma = np.full(approx.shape, 1.4826 * np.median(np.abs(detail)))
    for _ in range(2):
        keep = (laplace < q_laplace * sigma) & (gradient < q_gradient * sigma)
        if keep.sum() < 4 * FOI_SET:  # too few smooth coefficients: the smoother half
            keep = laplace < np.median(laplace)
        order = np.argsort(smooth[keep])
        sets = np.array_split(order, max(len(order) // FOI_SET, 2))
        kept_approx, kept_detail = approx[keep], detail[keep]
        y = np.array([kept_approx[i].mean() for i in sets])
        s2 = np.array([kept_detail[i].var(ddof=1) for i in sets])
        a, b = _ml_line(y, s2, np.array([len(i) for i in sets], np.float64))
        sigma = np.sqrt(np.maximum(a * smooth + b, 1e-12))
    local = ndimage.uniform_filter(z, 3, mode="reflect")
    return float(np.mean(np.maximum(a * local + b, 0.0)))


GAIN_SIGNIFICANT = 0.5
"""``select``: the refit's line must rise by this share of its middle value between the
image's 10th and 90th intensity percentiles for the noise to count as signal-dependent (0.2
and 0.5 measured on this set: 0.5 better for Gaussian noise, the same elsewhere; the engine's
:data:`napari_gr2r.engine.noise.global_level.GAIN_SIGNIFICANT`)."""


def line_is_flat(noisy: np.ndarray, rng: np.random.Generator) -> bool:
    """Whether the refit's line is flat (white noise whose gain is not significant)."""
    block, norm = _normalised(noisy)
    blocks = [norm.apply(block)]
    level, _ = refit(NoiseLevel.estimate(blocks, rng), blocks, rng)
    x10, x50, x90 = np.quantile(blocks[0], [0.1, 0.5, 0.9])
    a, b = level.a[0], level.b[0]
    return bool(level.kernel is None and a * (x90 - x10) < GAIN_SIGNIFICANT * (a * max(x50, 0) + b))


def est_select(noisy: np.ndarray, rng: np.random.Generator) -> float:
    """The refit, or Liu et al.'s global level where the refit's line is flat (Gaussian)."""
    block, norm = _normalised(noisy)
    blocks = [norm.apply(block)]
    level, curve = refit(NoiseLevel.estimate(blocks, rng), blocks, rng)
    if level.kernel is None:
        x10, x50, x90 = np.quantile(blocks[0], [0.1, 0.5, 0.9])
        a, b = level.a[0], level.b[0]
        if a * (x90 - x10) < GAIN_SIGNIFICANT * (a * max(x50, 0) + b):
            return est_liu2013(noisy, rng)
    return float(variance_map(block, level, norm, curve).mean())


ESTIMATORS = {"refit": est_refit, "bins": est_bins, "refit_min": est_refit_min,
              "bins_min": est_bins_min, "select": est_select,
              "highpass": est_highpass, "liu2013": est_liu2013, "chen2015": est_chen2015,
              "foi2008": est_foi2008, "liu_poly": est_liu_poly,
              "liu_hybrid": est_liu_hybrid}


def run(images: dict[str, tuple[np.ndarray, float]], seeds: int, estimators: list[str],
        ) -> list[dict]:
    rows = []
    for name, (clean, own) in images.items():
        for kind, levels in LEVELS.items():
            for level in levels:
                for seed in range(seeds):
                    rng = np.random.default_rng([seed, list(LEVELS).index(kind), int(level * 1000)])
                    noisy, truth = add_noise(clean, kind, level, rng)
                    truth += own
                    row = {"image": name, "noise": kind, "level": level, "seed": seed,
                           "truth": truth}
                    for est in estimators:
                        t0 = time.perf_counter()
                        value = ESTIMATORS[est](noisy, np.random.default_rng(seed))
                        row[est] = value / truth - 1
                        row[f"{est}_s"] = time.perf_counter() - t0
                    rows.append(row)
                    print(name, kind, level, seed,
                          " ".join(f"{e} {row[e]:+.3f}" for e in estimators), flush=True)
    return rows


def summary(rows: list[dict], estimators: list[str]) -> str:
    lines = ["| noise | estimator | median abs error | 90th percentile | worst | median signed | "
             "s per fit |", "| --- | --- | --- | --- | --- | --- | --- |"]
    kinds = list(LEVELS) + ["all"]
    for kind in kinds:
        sel = [r for r in rows if kind == "all" or r["noise"] == kind]
        if not sel:
            continue
        for est in estimators:
            err = np.array([r[est] for r in sel])
            t = np.mean([r[f"{est}_s"] for r in sel])
            a = np.abs(err)
            lines.append(f"| {kind} | {est} | {100 * np.median(a):.2f} % | "
                         f"{100 * np.quantile(a, 0.9):.2f} % | {100 * a.max():.1f} % | "
                         f"{100 * np.median(err):+.2f} % | {t:.2f} |")
    return "\n".join(lines)


def per_level(rows: list[dict], estimator: str = "refit") -> str:
    """Median signed and worst absolute error of one estimator, per noise and level."""
    lines = ["| noise | level | median signed | 90th percentile abs | worst abs |",
             "| --- | --- | --- | --- | --- |"]
    for kind, levels in LEVELS.items():
        for level in levels:
            err = np.array([r[estimator] for r in rows
                            if r["noise"] == kind and r["level"] == level])
            if err.size:
                lines.append(f"| {kind} | {level:g} | {100 * np.median(err):+.2f} % | "
                             f"{100 * np.quantile(np.abs(err), 0.9):.1f} % | "
                             f"{100 * np.abs(err).max():.1f} % |")
    return "\n".join(lines)


def fmd_calibration(fmd: Path) -> str:
    """Real noise: each FMD BPAE configuration's four captures calibrate the noise
    (:func:`napari_gr2r.engine.calibrate_noise`), against the fit on capture 1 alone; the truth
    is capture 1's mean squared difference from the 50-capture average fitted to it (scale and
    offset, shift to first order, slow difference), corrected for the capture's share in it. The
    next three columns: the mean over capture 1's pixels of the variance curve that ``assess``
    uses (``refit``), of ``refit_min``'s and of ``foi2008``'s; the last, the calibration against
    each of the four captures' own truth (a calibration is used on one capture at a time)."""
    from benchmarks.estimate import shifted_reference
    from napari_gr2r import engine
    from napari_gr2r.engine.errors import InputError

    lines = ["| configuration | truth (grey levels²) | calibration (4 captures) | fit (capture 1) | "
             "refit | refit_min | foi2008 | calibration against captures 1 / 2 / 3 / 4 "
             "(their brightness against the average) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for micro in ("Confocal", "TwoPhoton", "WideField"):
        for channel in "BGR":
            name = f"{micro}_BPAE_{channel}"
            raw = np.stack([_png(fmd / "raw" / f"{name}_{k}.png") for k in range(1, 5)])
            gt = average = _png(fmd / "gt" / f"{name}_1.png")
            # the average matched to the capture's intensity (the sample bleaches between
            # captures), position (a scanning microscope's captures lie a fraction of a pixel
            # apart) and slowly varying difference, with the capture's share of the average
            # taken into account: benchmarks.estimate.shifted_reference
            reference = shifted_reference(raw[0], gt)
            truth = reference["shift_noise_variance"]
            gt = reference["reference_shifted"]
            fit = engine.fit_noise(raw[0].astype(np.float32), "YX")
            fitted = float(np.mean(fit.variance(gt)))
            each = ""
            try:
                cal = engine.calibrate_noise(raw.astype(np.uint8), "TYX")
                calibrated = f"{float(np.mean(cal.variance(gt))) / truth - 1:+.1%}"
                each = " / ".join(_against_capture(cal, capture, average) for capture in raw)
            except InputError as exc:
                calibrated = "refused: " + ("saturated" if "saturated" in str(exc) else
                                            "moves" if "moves" in str(exc) else str(exc))
            curves = [ESTIMATORS[e](raw[0], np.random.default_rng(0)) / truth - 1
                      for e in ("refit", "refit_min", "foi2008")]
            cells = [f"{c:+.1%}" for c in curves]
            lines.append(f"| {name} | {truth:.1f} | {calibrated} | {fitted / truth - 1:+.1%} | "
                         + " | ".join(cells) + f" | {each} |")
            print(lines[-1], flush=True)
    return "\n".join(lines)


def _against_capture(cal: Any, capture: np.ndarray, gt: np.ndarray) -> str:
    """The calibration's mean variance over one capture's pixels against that capture's own
    truth (as :func:`fmd_calibration`'s), and the capture's brightness scale on the average:
    how far one capture's noise strays from what four captures calibrate."""
    from benchmarks.estimate import shifted_reference

    reference = shifted_reference(capture, gt)
    error = float(np.mean(cal.variance(reference["reference_shifted"])))
    return f"{error / reference['shift_noise_variance'] - 1:+.1%} ({reference['shift_scale']:.2f})"


REPO_FMD = Path(__file__).parent / "data" / "fmd"


def detection(images: dict[str, tuple[np.ndarray, float]], seeds: int) -> str:
    """Does the correlation detector (``looks_correlated``), and does the fit (a kernel kept),
    say "correlated" on each noise of the set, and on the FMD captures 1-2 in the repository
    (development data), whose noise's neighbour correlation is measured against the
    50-capture average (and between captures 1 and 2)?"""
    from napari_gr2r import engine
    from napari_gr2r.engine.noise.correlation import looks_correlated

    lines = ["| noise | cases | detected correlated | fit keeps a kernel |", "| --- | --- | --- | --- |"]
    for kind, levels in LEVELS.items():
        detected = kept = total = 0
        for clean, _ in images.values():
            for level in levels:
                for seed in range(seeds):
                    rng = np.random.default_rng([seed, list(LEVELS).index(kind), int(level * 1000)])
                    noisy, _ = add_noise(clean, kind, level, rng)
                    block, norm = _normalised(noisy)
                    detected += looks_correlated([norm.apply(block)], np.random.default_rng(seed))
                    kept += engine.fit_noise(noisy.astype(np.float32), "YX").kernel is not None
                    total += 1
        lines.append(f"| {kind} | {total} | {detected} | {kept} |")
    lines += ["", "| FMD capture | neighbour correlation (X, Y) against the average | "
              "between captures 1 and 2 | detected | fitted correlation |",
              "| --- | --- | --- | --- | --- |"]
    for micro in ("Confocal", "TwoPhoton", "WideField"):
        for channel in "BGR":
            name = f"{micro}_BPAE_{channel}"
            raw = [_png(REPO_FMD / "raw" / f"{name}_{k}.png") for k in (1, 2)]
            gt = _png(REPO_FMD / "gt" / f"{name}_1.png")
            design = np.stack([gt.ravel(), np.ones(gt.size)], axis=1)
            a, b = np.linalg.lstsq(design, raw[0].ravel(), rcond=None)[0]
            cells = []
            for n in (raw[0] - a * gt - b, raw[0] - raw[1]):
                n = n - n.mean()
                cells.append(f"{np.mean(n[:, 1:] * n[:, :-1]) / np.mean(n * n):.2f}, "
                             f"{np.mean(n[1:] * n[:-1]) / np.mean(n * n):.2f}")
            block, norm = _normalised(raw[0])
            found = looks_correlated([norm.apply(block)], np.random.default_rng(0))
            fit = engine.fit_noise(raw[0].astype(np.float32), "YX")
            lines.append(f"| {name}_1 | {cells[0]} | {cells[1]} | {'yes' if found else 'no'} | "
                         f"{fit.neighbour_correlation:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="folder for noise_fit.json and noise_fit.md")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--estimators", default="refit,highpass,liu2013,chen2015")
    parser.add_argument("--images", help="comma-separated subset of the clean images")
    parser.add_argument("--held-out", action="store_true",
                        help="the held-out images instead of the development set (score once)")
    parser.add_argument("--noises", help="comma-separated subset of the noises")
    parser.add_argument("--fmd", type=Path, default=FMD)
    parser.add_argument("--fmd-calibration", action="store_true",
                        help="only the FMD captures: calibration against fit")
    parser.add_argument("--detection", action="store_true",
                        help="only the correlation detector on the set and the FMD captures")
    parser.add_argument("--tables", type=Path,
                        help="only redraw the tables from a noise_fit.json written before")
    args = parser.parse_args(argv)
    if args.tables:
        rows = json.loads(args.tables.read_text())
        estimators = [k for k in rows[0] if k in ESTIMATORS]
        print(summary(rows, estimators) + "\n\n" + per_level(rows))
        return 0
    if args.fmd_calibration:
        table = fmd_calibration(args.fmd)
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            (Path(args.out) / "noise_fit_fmd.md").write_text(table + "\n")
        return 0
    estimators = args.estimators.split(",")
    images = clean_images(args.size, args.fmd, args.held_out)
    if args.detection:
        print(detection(images, args.seeds))
        return 0
    if args.images:
        images = {k: v for k, v in images.items() if k in args.images.split(",")}
    if args.noises:
        for kind in list(LEVELS):
            if kind not in args.noises.split(","):
                del LEVELS[kind]
    t0 = time.perf_counter()
    rows = run(images, args.seeds, estimators)
    table = summary(rows, estimators) + "\n\n" + per_level(rows, estimators[0])
    print(table)
    print(f"{len(rows)} cases in {time.perf_counter() - t0:.0f} s")
    if args.out:
        out = Path(args.out)
        stem = "noise_fit_held_out" if args.held_out else "noise_fit"
        (out / f"{stem}.json").write_text(json.dumps(rows, indent=0))
        (out / f"{stem}_table.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
