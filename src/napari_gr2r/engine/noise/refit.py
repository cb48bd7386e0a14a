"""The noise model, refitted for error estimation, where every per cent counts.

:func:`~napari_gr2r.engine.quality.estimate.assess` needs the noise variance to about 2 %: an error of
``δ`` in it moves a good denoiser's estimated error by about ``δ · σ² / MSE``, three to seven
times as much. The training's noise fit (:meth:`NoiseLevel.estimate`, a robust variance of the
high-pass residue per intensity bin, and a line through the bins) reads image texture as noise
by a few per cent, and a line cannot follow clipped or saturating cameras. For white noise (a
neighbour correlation below 0.2) the variance is therefore measured again, in the spirit of
Liu et al. (2013) and Chen et al. (2015):

1. overlapping 6x6 patches, in narrow bins of their mean (quantile bins, split where they span
   a wide range of intensities, since the variance changes along it);
2. in each bin, the variance of the patch covariance's noise subspace (without each patch's
   mean, which the bin fixes): the mean of its smallest eigenvalues, the largest set whose mean
   does not exceed its median (Chen et al.);
3. then, three times, the same on the patches that look like pure noise (a gradient energy
   below the 99th percentile of what pure noise of that variance gives: texture is left out),
   and divided by what this procedure gives on as many patches of simulated pure noise of
   unit variance (few patches spread the eigenvalues, and the smallest lie lower).

A second bound, the mean of the smallest tenth of the eigenvalues (:data:`SMALLEST`; the
bin then keeps the lower of the two, ``subspaces=("chen", SMALLEST)``), reads less of the
texture the selection lets through, but also reads noise that is only weakly correlated
between neighbours (as real confocal captures' is) low, since its smallest eigenvalues lie
below its variance: it is therefore not the default (``benchmarks/noise_fit.py``, estimator
``refit_min``, and its weakly correlated noise).

The variance function is then the curve through the bins (:class:`VarianceCurve`; a line fitted
to them for the report). Strongly correlated noise keeps what the fit measured
(:func:`~napari_gr2r.engine.noise.correlation.measure_correlation`: its autocovariance to lag 6,
and the variance scaled to it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .level import NoiseLevel, fit_line_nonnegative

PATCH = 6
BINS = 12
MAX_PATCHES = 200_000
MIN_PER_BIN = 2000
SMALLEST = 0.1
"""The share of the patch covariance's eigenvalues, the smallest, of the second bound."""
SUBSPACES: tuple[str | float, ...] = ("chen",)
"""How each bin's noise subspace is bounded: ``"chen"`` (Chen et al.'s rule) or a share of
the smallest eigenvalues; the bin keeps the lowest variance they give."""


@dataclass
class VarianceCurve:
    """Noise variance against the local mean, per channel (normalised units): linear
    interpolation through ``(x, v)`` knots, continued beyond the last with the slope ``a``."""

    x: list[list[float]]
    v: list[list[float]]
    a: list[float]
    spread: list[float] = field(default_factory=list)
    """Per channel, the relative standard deviation of the typical variance, from a bootstrap
    over blocks of the image (what the sampling of the image leaves uncertain)."""
    disagreement: list[float] = field(default_factory=list)
    """Per channel, ``|log|`` of the ratio of two fits of the variance where two were made
    (:func:`~napari_gr2r.engine.noise.global_level.refit_selected`): how far fits that read
    texture differently disagree on this image, a measure of what neither can see."""

    def __call__(self, mean: np.ndarray, channel: int) -> np.ndarray:
        x, v = np.asarray(self.x[channel]), np.asarray(self.v[channel])
        out = np.interp(mean, x, v)
        above = mean > x[-1]
        out[above] = v[-1] + self.a[channel] * (mean[above] - x[-1])
        return np.maximum(out, 1e-12)


def refit(level: NoiseLevel, blocks: list[np.ndarray], rng: np.random.Generator,
          max_patches: int = MAX_PATCHES, subspaces: tuple[str | float, ...] = SUBSPACES,
          ) -> tuple[NoiseLevel, VarianceCurve | None]:
    """``level`` refitted on normalised ``(C, Z, Y, X)`` blocks, and the variance curve.

    Strongly correlated noise (a kernel in ``level``) keeps its measured kernel and variance,
    and no curve; data too small for the bins keeps ``level`` as it is. ``subspaces``: see
    :data:`SUBSPACES`.
    """
    if level.kernel is not None:
        return level, None
    null, _ = _patches([rng.standard_normal((256, 256))], 60_000, rng)
    q99 = float(np.quantile(_texture(null), 0.99))
    a_out, b_out, typical, knots_x, knots_v, spread = [], [], [], [], [], []
    for c in range(len(level.a)):
        planes = [p for b in blocks for p in b[c] if min(p.shape) >= 2 * PATCH]
        if not planes:
            return level, None
        patches, where = _patches(planes, max_patches, rng)
        means = patches.mean(axis=1)
        edges = _bin_edges(means)
        if len(edges) < 3:
            return level, None
        xs, vs, ws, boot = [], [], [], Bootstrap(int(where.max()) + 1, rng)
        for lo, hi in zip(edges[:-1], edges[1:]):
            sel = (means >= lo) & (means <= hi)
            variance, level_x, energy, used = _bin_variance(patches[sel], null, q99, rng,
                                                            subspaces)
            xs.append(level_x)
            vs.append(variance)
            ws.append(float(sel.sum()))
            boot.add(energy, where[sel][used], float(sel.sum()))
        spread.append(boot.relative_spread())
        # weighted by the patches each bin holds, so that the line keeps the image's mean
        # variance: weights by each knot's precision let a nearly noiseless bin (a dark floor
        # that rounds to one grey level) pull the whole line down
        a, b = fit_line_nonnegative(np.array(xs), np.array(vs), np.array(ws))
        a_out.append(a)
        b_out.append(b)
        typical.append(float(np.average(vs, weights=ws)))
        knots_x.append(xs)
        knots_v.append(vs)
    refitted = NoiseLevel(a_out, b_out, typical, None,
                          correlation_unmeasured=level.correlation_unmeasured)
    return refitted, VarianceCurve(knots_x, knots_v, a_out, spread)


BLOCK = 32
"""Side (pixels) of the blocks the bootstrap resamples: patches overlap, blocks hardly do."""
REPLICATES = 200


class Bootstrap:
    """A Poisson bootstrap over the image's blocks of the typical (patch-weighted) variance:
    each replicate weighs every block by a Poisson(1) draw, the same in every bin."""

    def __init__(self, blocks: int, rng: np.random.Generator) -> None:
        self.weights = rng.poisson(1.0, (REPLICATES, blocks)).astype(np.float64)
        self.replicates: list[np.ndarray] = []
        self.shares: list[float] = []

    def add(self, energy: np.ndarray, block: np.ndarray, share: float) -> None:
        """A bin: the noise energy of each patch it measured on, the patches' blocks, and the
        bin's weight in the typical variance."""
        n = self.weights.shape[1]
        sums = np.bincount(block, energy, minlength=n)
        counts = np.bincount(block, minlength=n).astype(np.float64)
        self.replicates.append((self.weights @ sums) / np.maximum(self.weights @ counts, 1e-12))
        self.shares.append(share)

    def relative_spread(self) -> float:
        typical = np.average(np.stack(self.replicates, axis=1), axis=1, weights=self.shares)
        return float(np.std(typical) / max(float(np.mean(typical)), 1e-30))


def _bin_edges(means: np.ndarray) -> np.ndarray:
    """Quantile edges, split where a bin spans more than 1/BINS of the range, then merged
    until every bin holds MIN_PER_BIN patches."""
    lo, hi = np.quantile(means, [0.0, 1.0])
    width = (hi - lo) / BINS
    edges = [float(lo)]
    for right in np.quantile(means, np.linspace(0, 1, BINS + 1))[1:]:
        pieces = max(1, int(np.ceil((right - edges[-1]) / max(width, 1e-12) - 1e-9)))
        edges += list(np.linspace(edges[-1], right, pieces + 1)[1:])
    counts = np.histogram(means, edges)[0]
    merged = [edges[0]]
    held = 0
    for count, right in zip(counts, edges[1:]):
        held += count
        if held >= MIN_PER_BIN:
            merged.append(right)
            held = 0
    if held and len(merged) > 1:
        merged[-1] = edges[-1]
    return np.unique(merged)


def _patches(planes: list[np.ndarray], limit: int, rng: np.random.Generator,
             ) -> tuple[np.ndarray, np.ndarray]:
    """At most ``limit`` overlapping patches, flattened, drawn evenly from the planes, and the
    index of the ``BLOCK``-pixel block of its plane each comes from."""
    per_plane = max(1, limit // len(planes))
    out, where, first = [], [], 0
    for plane in planes:
        view = np.lib.stride_tricks.sliding_window_view(plane, (PATCH, PATCH))
        rows, cols = view.shape[:2]
        view = view.reshape(-1, PATCH * PATCH)
        picked = np.arange(len(view))
        if len(view) > per_plane:
            picked = np.sort(rng.choice(len(view), per_plane, replace=False))
        out.append(np.asarray(view[picked], np.float64))
        across = -(-cols // BLOCK)
        where.append(first + (picked // cols // BLOCK) * across + (picked % cols) // BLOCK)
        first += -(-rows // BLOCK) * across
    return np.concatenate(out), np.concatenate(where)


def _texture(patches: np.ndarray) -> np.ndarray:
    """Gradient energy of each patch less its best-fitting plane: the trace of its gradient
    covariance, blind to a smooth slope (which would otherwise let in only the patches on a
    slope whose noise happens to be low)."""
    q = (patches - patches @ _plane_projector()).reshape(-1, PATCH, PATCH)
    return np.sum(np.diff(q, axis=2) ** 2, axis=(1, 2)) + np.sum(np.diff(q, axis=1) ** 2,
                                                                  axis=(1, 2))


def _noise_subspace(cov: np.ndarray, rule: str | float = "chen") -> np.ndarray:
    """The eigenvectors of the patch covariance's noise subspace: with ``"chen"`` (Chen et
    al. 2015), the smallest eigenvalues, the largest set whose mean does not exceed its median;
    with a share, that share of the smallest (at least one). The smallest alone (Liu et al.
    2013) resists texture better on synthetic noise but reads weakly correlated real noise low
    (``benchmarks/noise_fit.py``, docs/estimate-accuracy.md)."""
    lam, vec = np.linalg.eigh(cov)
    if rule != "chen":
        return vec[:, :max(1, round(float(rule) * len(lam)))]
    lam, vec = lam[::-1], vec[:, ::-1]
    for i in range(len(lam)):
        tail = lam[i:]
        if np.mean(tail) <= np.median(tail):
            return vec[:, i:]
    return vec[:, -1:]


def _subspace_variance(patches: np.ndarray, rule: str | float = "chen",
                       ) -> tuple[float, np.ndarray, int]:
    """The noise variance (mean eigenvalue of the noise subspace), each patch's share of it
    (its energy in that subspace per dimension, whose mean is the variance) and how many
    dimensions were left out as signal."""
    # without each patch's mean: the bins hold patches of nearly one mean, which would leave
    # the covariance almost nothing along that direction
    ac = patches @ _ac_basis(patches.shape[1])
    centred = ac - ac.mean(axis=0)
    basis = _noise_subspace(np.cov(ac.T), rule)
    energy = np.sum((centred @ basis) ** 2, axis=1) / basis.shape[1] * \
        (len(patches) / max(len(patches) - 1, 1))
    return float(np.mean(energy)), energy, ac.shape[1] - basis.shape[1]


@lru_cache(maxsize=1)
def _plane_projector() -> np.ndarray:
    """``(n, n)`` projection of a flattened patch onto planes ``a + b y + c x``."""
    yy, xx = (a.ravel().astype(np.float64) for a in np.mgrid[0:PATCH, 0:PATCH])
    design = np.stack([np.ones_like(yy), yy, xx], axis=1)
    return (design @ np.linalg.pinv(design)).T


@lru_cache(maxsize=2)
def _ac_basis(n: int) -> np.ndarray:
    """An orthonormal basis ``(n, n - 1)`` of the patch vectors with zero mean."""
    q, _ = np.linalg.qr(np.eye(n) - 1.0 / n)
    return q[:, :n - 1]


def _bin_variance(patches: np.ndarray, null: np.ndarray, q99: float,
                  rng: np.random.Generator, subspaces: tuple[str | float, ...],
                  ) -> tuple[float, float, np.ndarray, np.ndarray]:
    """A bin's noise variance, corrected on simulated noise: the lowest that the
    ``subspaces`` give; with it, the mean intensity of the patches it was measured on, their
    noise energies (corrected the same way) and which patches they are (a mask)."""
    best = None
    for rule in subspaces:
        variance, level_x, energy, used, _ = _select_and_measure(patches, q99, rule=rule)
        bias = _null_bias(null, len(patches), q99, rng, rule)
        if best is None or variance / bias < best[0]:
            best = (variance / bias, level_x, energy / bias, used)
    assert best is not None
    return best


def _null_bias(null: np.ndarray, count: int, q99: float, rng: np.random.Generator,
               rule: str | float = "chen") -> float:
    """What :func:`_select_and_measure` gives on ``count`` patches of pure noise of unit
    variance: the smallest eigenvalues of a sample covariance lie below the variance, the more
    so the fewer the patches, and choosing patches by their texture lowers it further."""
    if count < len(null):
        null = null[rng.choice(len(null), count, replace=False)]
    return _select_and_measure(null, q99, rule=rule)[0]


def _select_and_measure(patches: np.ndarray, q99: float, iterations: int = 3,
                        rule: str | float = "chen",
                        ) -> tuple[float, float, np.ndarray, np.ndarray, int]:
    """The noise variance of a bin of patches (its noise subspace bounded by ``rule``), the
    mean intensity of the patches it was measured on, their noise energies, which patches they
    are (a mask) and the dimensions left out as signal."""
    texture = _texture(patches)
    used = np.ones(len(patches), bool)
    variance, energy, dims = _subspace_variance(patches, rule)  # from above: texture only adds
    for _ in range(iterations):
        sel = texture < variance * q99
        if sel.sum() < 4 * PATCH * PATCH:
            break
        used = sel
        variance, energy, dims = _subspace_variance(patches[sel], rule)
    return variance, float(np.mean(patches[used])), energy, used, dims
