"""One noise level for the whole image, for white noise whose variance does not follow the
intensity (Gaussian noise): Liu, Tanaka & Okutomi (2013), "Single-image noise level estimation
for blind denoising".

The smallest eigenvalue of the covariance of weak-texture patches, the patches chosen again
with that level a few times (a gradient energy below what pure noise of that level gives at
its 99th percentile), divided by what the same procedure gives on simulated pure noise of unit
variance. Where the noise's variance does not depend on the intensity, this one level reads
less image texture as noise than a variance per intensity bin, whose bins each hold fewer
flat patches (``benchmarks/noise_fit.py`` compares them on images of known noise).
"""

from __future__ import annotations

import numpy as np

from .level import NoiseLevel
from .refit import PATCH, SUBSPACES, VarianceCurve, _patches, _texture, refit

MAX_PATCHES = 60_000
ITERATIONS = 3


def liu_level(planes: list[np.ndarray], rng: np.random.Generator) -> float:
    """The noise variance of YX ``planes`` (normalised units), one level for all of them."""
    patches, _ = _patches(planes, MAX_PATCHES, rng)
    null, _ = _patches([rng.standard_normal((256, 256))], MAX_PATCHES, rng)
    q99 = float(np.quantile(_texture(null), 0.99))
    # as many patches of pure noise: the fewer, the lower a sample covariance's smallest
    # eigenvalue
    if len(patches) < len(null):
        null = null[rng.choice(len(null), len(patches), replace=False)]
    return _measure(patches, q99) / max(_measure(null, q99), 1e-30)


def _smallest(patches: np.ndarray) -> float:
    return float(np.linalg.eigvalsh(np.cov(patches.T))[0])


def _measure(patches: np.ndarray, q99: float) -> float:
    variance = _smallest(patches)
    texture = _texture(patches)
    for _ in range(ITERATIONS):
        sel = texture < variance * q99
        if sel.sum() < 4 * PATCH * PATCH:
            break
        variance = _smallest(patches[sel])
    return variance


GAIN_SIGNIFICANT = 0.5
"""The refit's line must rise by this share of its middle value between the image's 10th and
90th intensity percentiles for the noise to count as signal-dependent (Poisson-Gaussian)."""


def refit_selected(level: NoiseLevel, blocks: list[np.ndarray], rng: np.random.Generator,
                   subspaces: tuple[str | float, ...] = SUBSPACES,
                   ) -> tuple[NoiseLevel, VarianceCurve | None]:
    """:func:`~napari_gr2r.engine.noise.refit.refit` (its ``subspaces``), then, per channel of
    white noise whose refitted line is flat (no significant gain), Liu et al.'s single level in
    its place; how far the two disagree is kept (:attr:`VarianceCurve.disagreement`) for the
    interval."""
    level, curve = refit(level, blocks, rng, subspaces=subspaces)
    if curve is None or level.kernel is not None:
        return level, curve
    curve.disagreement = [0.0] * len(level.a)
    for c in range(len(level.a)):
        planes = [p for b in blocks for p in b[c] if min(p.shape) >= 2 * PATCH]
        x10, x50, x90 = np.quantile(np.concatenate([p.ravel() for p in planes]),
                                    [0.1, 0.5, 0.9])
        a, b = level.a[c], level.b[c]
        if a * (x90 - x10) >= GAIN_SIGNIFICANT * (a * max(x50, 0.0) + b):
            continue
        single = liu_level(planes, rng)
        if not single > 0:
            continue
        curve.disagreement[c] = abs(float(np.log(single / max(level.typical[c], 1e-30))))
        level.a[c], level.b[c], level.typical[c] = 0.0, single, single
        curve.v[c] = [single] * len(curve.v[c])
        curve.a[c] = 0.0
    return level, curve
