"""Noise from a calibration: repeated captures of a still field, or the camera's own numbers.

Many labs know their camera (gain, offset, read noise) or can take a few captures of a field that
does not change. Then the noise needs no fitting on the image to denoise: across the captures,
each pixel's mean is its clean intensity and the spread around it is pure noise, whatever the
image holds. Real repeated captures are not quite repeats: the illumination (a laser's power,
bleaching) scales each one a little, and a scanning microscope's captures lie a fraction of a
pixel apart. Each capture is therefore compared with the mean image scaled, offset and shifted
to fit it (a least-squares fit of ``k * mean + c + dy * d(mean)/dy + dx * d(mean)/dx``: the shift
to first order), and what it does not explain, less its slow changes across the field
(uneven drift of the illumination, focus, bleaching: :mod:`.drift`), is the noise; captures
more than :data:`MAX_SHIFT` pixels apart are refused as moving. :func:`calibrate_noise` fits
``variance(x) = gain * max(x, black) + offset`` (input units) to the per-pixel means and
variances of those deviations, binned by intensity, and measures the noise's correlation
between pixels on the deviations themselves (no signal in them).

The calibration is in the input's own units: :meth:`NoiseCalibration.level` turns it into the
normalised :class:`~napari_gr2r.engine.noise.level.NoiseLevel` a model or an estimate uses.

The module is longer than 400 lines because the calibration (its units, its file) and its
measurement from captures, with the checks real captures need, are one piece.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.normalization import Normalization
from ..errors import InputError
from .correlation import RADIUS, kernel_autocorrelation, kernel_from_correlation
from .drift import retained_share, without_slow_changes
from .level import NoiseLevel, signed
from .local import box_mean
from .refit import VarianceCurve

BINS = 32
SATURATED_SHARE = 0.02
"""Pixels that reach the data's top value in any capture: above this share the captures are
refused as saturated; below it those pixels are left out of the fit."""
MAX_SHIFT = 1.0
"""Pixels by which a capture may lie off the mean image: beyond it, a first-order shift no
longer describes it, and the captures are taken to move."""
SEARCH = 2
"""Pixels within which a capture's whole-pixel shift is looked for (a larger move leaves it
closer to one of these offsets than to none)."""
MOVED = 0.9
"""Residual variance, as a share of its value in place, that an offset must reach to count as
the captures' move."""
CALIBRATED_CORRELATION = 0.02
"""Neighbour correlation above which a calibration keeps the noise's kernel. Lower than a fit
on one image needs (:data:`~.correlation.CORRELATION_THRESHOLD`): the captures' deviations hold
no texture to mistake for correlation, and a scanning microscope's weak correlation along its
lines still biases an estimate of the error that takes the noise for white."""
FORMAT = "napari-gr2r noise calibration"


@dataclass
class NoiseCalibration:
    """Noise variance ``gain[c] * max(x, black[c]) + offset[c]`` at clean intensity ``x`` in
    the input's units, per channel, and its correlation between pixels."""

    gain: list[float]
    offset: list[float]
    black: list[float]
    """Intensity below which the variance stops falling (the camera's offset)."""
    kernel: list[list[float]] | None = None
    """Unit-L2 kernel that makes white noise correlated like the noise; None: white."""
    frames: int = 0
    """Captures it was measured on (0: given as camera numbers)."""
    spread: float = 0.0
    """Relative standard deviation of the mean noise variance the calibration gives."""
    source: str = "calibration"
    knots: list[list[list[float]]] | None = None
    """Per channel ``[x, v]``: the variance measured at intensities ``x`` (input units) by
    :func:`calibrate_noise`, which :meth:`measured` follows between them. Real captures stray
    from a line (8-bit captures clipped at 0 in the dark), and an estimate of the error depends
    on the variance pixel by pixel: :meth:`curve` (what ``assess`` uses) follows the knots.
    None (camera numbers): the line everywhere."""

    @classmethod
    def from_camera(cls, gain: float, offset: float, read_noise: float,
                    channels: int = 1) -> NoiseCalibration:
        """From the camera's numbers in its output units: ``gain`` (units per photo-electron),
        ``offset`` (the value with no light) and ``read_noise`` (standard deviation)."""
        for name, value in (("gain", gain), ("read_noise", read_noise)):
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"{name} must be a number of at least 0, not {value!r}.")
        if not math.isfinite(offset):
            raise InputError(f"offset must be a finite number, not {offset!r}.")
        # var = gain (x - offset) + read² = gain x + (read² - gain offset) for x >= offset
        return cls([float(gain)] * channels, [float(read_noise**2 - gain * offset)] * channels,
                   [float(offset)] * channels)

    def variance(self, x: Any, channel: int = 0) -> np.ndarray:
        """Noise variance at clean intensity ``x`` (input units): the line (what a model's
        generated noise follows)."""
        x = np.maximum(np.asarray(x, np.float64), self.black[channel])
        return np.maximum(self.gain[channel] * x + self.offset[channel], 1e-12)

    def measured(self, x: Any, channel: int = 0) -> np.ndarray:
        """Noise variance at clean intensity ``x`` as the captures measured it: through the
        :attr:`knots` (the line above the last; the first value below the first), or the
        line without knots."""
        if self.knots is None:
            return self.variance(x, channel)
        x = np.asarray(x, np.float64)
        xs, vs = (np.asarray(k, np.float64) for k in self.knots[channel])
        out = np.interp(x, xs, vs)
        out = np.where(x > xs[-1], vs[-1] + self.gain[channel] * (x - xs[-1]), out)
        return np.maximum(out, 1e-12)

    def level(self, norm: Normalization, blocks: list[np.ndarray] | None = None) -> NoiseLevel:
        """The calibration in the normalised units of ``norm``; ``typical`` is its mean over
        the pixels of ``blocks`` (``(C, Z, Y, X)`` in input units) when given."""
        a, b, typical = [], [], []
        for c in range(len(self.gain)):
            s, low = norm.scale(c), norm.low[c]
            a.append(float(self.gain[c] / s))
            b.append(float(max(self.variance(low, c)[()], 1e-12) / s / s))
            if blocks:
                pixels = np.concatenate([np.ravel(blk[c]) for blk in blocks])
                typical.append(float(np.mean(self.variance(pixels, c))) / s / s)
            else:
                typical.append(float(self.variance(low + s / 2, c)[()]) / s / s)
        return NoiseLevel(a, b, typical, self.kernel, source=self.source)

    def curve(self, norm: Normalization) -> VarianceCurve:
        """The variance function in ``norm``'s units, its floor below ``black`` included."""
        xs, vs = [], []
        for c in range(len(self.gain)):
            s, low = norm.scale(c), norm.low[c]
            knots = np.asarray(self.knots[c][0], np.float64) if self.knots is not None else \
                np.array([self.black[c], self.black[c] + s])
            xs.append(((knots - low) / s).tolist())
            vs.append((self.measured(knots, c) / s / s).tolist())
        return VarianceCurve(xs, vs, [g / norm.scale(c) for c, g in enumerate(self.gain)],
                             [self.spread] * len(self.gain))

    def describe(self) -> str:
        """The first channel's variance function and the correlation between neighbouring
        pixels in words, e.g. ``variance 4.04·max(x, 3) − 21.9, correlated between neighbouring
        pixels (0.06)``."""
        text = f"variance {self.gain[0]:.4g}·max(x, {self.black[0]:.4g}) {signed(self.offset[0])}, "
        if self.kernel is None:
            return text + "white"
        rho = kernel_autocorrelation(self.kernel, 1)
        return text + f"correlated between neighbouring pixels ({max(rho[1, 2], rho[2, 1]):.2f})"

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NoiseCalibration:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError("This is not a noise calibration written by napari-gr2r "
                             "('napari-gr2r calibrate' writes one).")
        fields = {k: data[k] for k in ("gain", "offset", "black", "kernel", "frames", "spread",
                                       "source", "knots") if k in data}
        return cls(**fields)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the calibration as JSON (atomically)."""
        from ..io.atomic import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> NoiseCalibration:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"No noise calibration at {path}.") from None
        except (OSError, ValueError) as exc:
            raise InputError(f"Cannot read the noise calibration {path}: {exc}") from None
        return cls.from_dict(data)


@dataclass
class _Captures:
    """The captures as ``(T, C, P, Y, X)`` float64 (P: the planes, Z or 1)."""

    data: np.ndarray
    top: float | None = field(default=None)


def calibrate_noise(frames: Any, axes: str = "TYX") -> NoiseCalibration:
    """A noise calibration from repeated captures of one still field.

    Parameters
    ----------
    frames : array or list of arrays
        Two or more captures of the same field, nothing moving or changing between them, in
        the units of the images to denoise (a list: one array per capture, each with ``axes``
        less the ``T``).
    axes : str
        The axes of ``frames``: ``T`` (the captures) and ``Y``, ``X``, optionally ``C``, ``Z``.

    Returns
    -------
    NoiseCalibration
        For ``engine.assess(..., noise=cal)`` and ``engine.train(..., noise=cal)``.
    """
    captures = _captures(frames, axes)
    data = _without_repeats(captures.data)
    _check_saturation(data, captures.top)
    t = data.shape[0]
    keep = ~_saturated(data, captures.top)
    mean, deviations = _deviations(data, keep)
    # slow changes of the field between captures are not noise (drift.py); what the
    # subtraction takes of the noise itself is given back by dividing by its retained share
    deviations = without_slow_changes(deviations, keep)
    rho = _correlation(deviations)
    var = np.sum(deviations * deviations, axis=0) / (t - 1) / retained_share(rho)
    local = _local_mean(mean)
    gain, offset, black, spreads, knots = [], [], [], [], []
    rng = np.random.default_rng(0)
    for c in range(data.shape[1]):
        m, v = local[c][keep[c]], var[c][keep[c]]
        edges = np.unique(np.quantile(m, np.linspace(0, 1, BINS + 1)))
        xs, vs, ws = [], [], []
        for lo, hi in zip(edges[:-1], edges[1:]):
            sel = (m >= lo) & (m <= hi)
            if sel.sum() < 20:
                continue
            xs.append(float(m[sel].mean()))
            vs.append(float(v[sel].mean()))
            ws.append(float(sel.sum()))
        if not xs:  # captures too small for bins of 20 pixels: one bin
            xs, vs, ws = [float(m.mean())], [float(v.mean())], [float(m.size)]
        a, b = _fit_line(np.array(xs), np.array(vs), np.array(ws))
        knots.append([xs, vs])
        gain.append(a)
        offset.append(b)
        black.append(float(mean[c][keep[c]].min()))
        # how far the captures' variance strays from the measured curve, block by block
        spreads.append(_bootstrap_spread(
            var[c] / np.maximum(np.interp(local[c], xs, vs), 1e-30), rng))
    return NoiseCalibration(gain, offset, black, _kernel(rho), frames=t,
                            spread=float(max(spreads)), knots=knots)


def _local_mean(mean: np.ndarray) -> np.ndarray:
    """``(C, Z, Y, X)``: the mean image's local mean, what the estimate looks the variance up
    with (:func:`~napari_gr2r.engine.noise.local.box_mean`). Binned by each pixel's own mean
    over the captures instead, which still holds a share of the noise, a bright bin gathers
    pixels whose noise happened to be high: the curve comes out flattened, and dim captures'
    mean variance reads a few per cent low where the estimate looks it up."""
    return box_mean(torch.from_numpy(np.ascontiguousarray(mean, np.float32))).numpy()


def _fit_line(x: np.ndarray, v: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """``v = a x + b`` by least squares weighted by the bins' pixel counts, ``a >= 0``; ``b``
    may be negative: a camera's offset puts the variance's zero below its darkest value.
    Weighted by the counts, the line's mean over the pixels is the captures' mean variance
    even where a line does not describe the variance exactly (8-bit captures clipped at 0 in
    the dark); the mean over the pixels is what an estimate of the error depends on most."""
    if x.size < 2 or np.ptp(x) <= 1e-12 * max(float(np.abs(x).max()), 1.0):
        return 0.0, float(np.average(v, weights=counts))
    sw = np.sqrt(counts)
    design = np.stack([x, np.ones_like(x)], axis=1) * sw[:, None]
    a, b = np.linalg.lstsq(design, v * sw, rcond=None)[0]
    if a < 0:
        return 0.0, float(np.average(v, weights=counts))
    return float(a), float(b)


def _captures(frames: Any, axes: str) -> _Captures:
    axes = str(axes).upper()
    if isinstance(frames, (list, tuple)):
        shapes = {np.shape(f) for f in frames}
        if len(shapes) > 1:
            raise InputError(f"The captures have different shapes {sorted(shapes)}: a "
                             "calibration needs captures of one field, all the same size.")
        frames = np.stack([np.asarray(f) for f in frames]) if frames else np.zeros((0,))
        axes = axes if axes.startswith("T") else "T" + axes
    data = np.asarray(frames)
    if len(axes) != data.ndim or set(axes) - set("TCZYX") or len(set(axes)) != len(axes) or \
            not {"T", "Y", "X"} <= set(axes):
        raise InputError(f"axes={axes!r} does not describe captures of shape {data.shape}: "
                         "give one letter per dimension, with T for the captures and Y, X "
                         "(e.g. 'TYX', 'TCYX', 'TZYX').")
    top = float(np.iinfo(data.dtype).max) if data.dtype.kind in "ui" else None
    for letter in "CZ":
        if letter not in axes:
            data, axes = data[..., None], axes + letter
    data = np.transpose(data, [axes.index(a) for a in "TCZYX"]).astype(np.float64)
    if data.shape[0] < 2:
        raise InputError(f"A calibration needs two or more captures of the same field along "
                         f"T; got {data.shape[0]}. Take a few captures of a still field.")
    if min(data.shape[-2:]) < 16:
        raise InputError(f"The captures are {data.shape[-2]}x{data.shape[-1]} pixels: too "
                         "small to calibrate; use captures of at least 16x16.")
    if not np.all(np.isfinite(data)):
        raise InputError("The captures hold NaN or infinite values.")
    return _Captures(data, top)


def _without_repeats(data: np.ndarray) -> np.ndarray:
    """The captures with exact copies of an earlier one left out (a file given twice has no
    noise of its own to show: it would halve the spread measured), with a warning."""
    seen: dict[bytes, int] = {}
    kept, repeats = [], []
    for t in range(len(data)):
        key = hashlib.sha1(data[t].tobytes()).digest()
        if key in seen:
            repeats.append(f"{t} (= capture {seen[key]})")
        else:
            seen[key] = t
            kept.append(t)
    if not repeats:
        return data
    if len(kept) < 2:
        raise InputError("The captures are all the same image: a calibration needs two or more "
                         "different captures of the same field.")
    warnings.warn(f"Capture(s) {', '.join(repeats)} repeat an earlier one exactly and are left "
                  f"out; calibrating on {len(kept)} captures.", RuntimeWarning, stacklevel=3)
    return data[kept]


def _check_saturation(data: np.ndarray, top: float | None) -> None:
    """Refuse saturated captures."""
    at_peak = float(np.mean(_saturated(data, top)))
    if at_peak > SATURATED_SHARE:
        raise InputError(f"{100 * at_peak:.2g} % of the pixels reach the captures' top value "
                         f"{float(data.max()):g}: they are saturated, and saturated pixels have no noise "
                         "to measure. Lower the exposure or gain, or crop them out.")


def _deviations(data: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, deviations)``: the mean image, and each capture less the mean scaled, offset
    and shifted (to first order) to fit it, per channel (``keep``: the pixels fitted on).
    Refuses captures that lie more than :data:`MAX_SHIFT` pixels off the mean."""
    mean = data.mean(axis=0)
    deviations = np.empty_like(data)
    for c in range(data.shape[1]):
        m = mean[c]
        gy, gx = np.gradient(m, axis=(-2, -1))
        design = np.stack([m.ravel(), np.ones(m.size), gy.ravel(), gx.ravel()], axis=1)
        fitted = keep[c].ravel()
        for t in range(data.shape[0]):
            coef = np.linalg.lstsq(design[fitted], data[t, c].ravel()[fitted], rcond=None)[0]
            shift = max(math.hypot(coef[2], coef[3]) / max(abs(float(coef[0])), 1e-12),
                        _whole_pixel_shift(data[t, c], (mean[c] * len(data) - data[t, c]) / (len(data) - 1)))
            if not shift <= MAX_SHIFT:
                raise InputError(
                    f"Capture {t} lies {shift:.2g} pixels off the others: the field moves (or "
                    "focus drifts) between captures. Register them first, or take captures "
                    "of a still field.")
            deviations[t, c] = data[t, c] - (design @ coef).reshape(m.shape)
    return mean, deviations


def _whole_pixel_shift(capture: np.ndarray, others: np.ndarray) -> float:
    """How many whole pixels ``capture`` lies off ``others`` (the mean of the other captures),
    which a first-order fit cannot see: the offset within :data:`SEARCH` pixels at which
    ``others``, scaled and offset, explains clearly more of ``capture`` than in place
    (residual variance below :data:`MOVED` of its value in place); 0 when none does."""
    def residual(dy: int, dx: int) -> float:
        m = np.roll(others, (dy, dx), axis=(-2, -1))[..., r:-r, r:-r].ravel()
        y = capture[..., r:-r, r:-r].ravel()
        cov = np.cov(m, y)
        return float(cov[1, 1] - cov[0, 1] ** 2 / max(cov[0, 0], 1e-30))

    r = min(SEARCH, capture.shape[-2] // 4, capture.shape[-1] // 4)
    if r < 1:
        return 0.0
    in_place = residual(0, 0)
    best, offset = in_place, 0.0
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if (dy or dx) and (value := residual(dy, dx)) < best:
                best, offset = value, math.hypot(dy, dx)
    return offset if best < MOVED * in_place else 0.0


def _saturated(data: np.ndarray, top: float | None) -> np.ndarray:
    """``(C, Z, Y, X)``: pixels at the top value in some capture (the dtype's largest for
    integers; else the data's own largest where several pixels share it)."""
    peak = float(data.max())
    hit = (data >= peak).any(axis=0)
    if top is None and peak < np.inf and int(hit.sum()) <= 1:
        return np.zeros_like(hit)  # one brightest pixel is not a ceiling
    if top is not None and peak < top:
        return np.zeros_like(hit)
    return hit


def _bootstrap_spread(variance: np.ndarray, rng: np.random.Generator, block: int = 32,
                      replicates: int = 200) -> float:
    """Relative standard deviation of the mean variance, by a Poisson bootstrap over blocks."""
    _, ny, nx = variance.shape
    by, bx = -(-ny // block), -(-nx // block)
    ids = (np.arange(ny)[:, None] // block) * bx + np.arange(nx)[None, :] // block
    ids = np.broadcast_to(ids, variance.shape).ravel()
    sums = np.bincount(ids, variance.ravel(), minlength=by * bx)
    counts = np.bincount(ids, minlength=by * bx).astype(np.float64)
    w = rng.poisson(1.0, (replicates, by * bx))
    means = (w @ sums) / np.maximum(w @ counts, 1e-12)
    return float(np.std(means) / max(float(np.mean(means)), 1e-30))


def _correlation(deviations: np.ndarray) -> np.ndarray:
    """The deviations' correlation between pixels at lags up to :data:`RADIUS` (1 at the
    centre), symmetrised."""
    r = RADIUS
    planes = deviations.reshape(-1, *deviations.shape[-2:])
    ny, nx = planes.shape[-2:]
    spec = np.fft.rfft2(planes, s=(ny + r, nx + r))
    acov = np.fft.fftshift(np.fft.irfft2(np.abs(spec) ** 2, s=(ny + r, nx + r)).sum(axis=0))
    cy, cx = (ny + r) // 2, (nx + r) // 2
    cov = acov[cy - r:cy + r + 1, cx - r:cx + r + 1]
    rho = cov / max(cov[r, r], 1e-30)
    return (rho + rho[::-1, ::-1]) / 2


def _kernel(rho: np.ndarray) -> list[list[float]] | None:
    """The kernel of the noise's correlation ``rho`` (:func:`_correlation`), or None if white."""
    r = rho.shape[0] // 2
    if max(rho[r, r + 1], rho[r + 1, r]) < CALIBRATED_CORRELATION:
        return None
    return kernel_from_correlation(rho).tolist()
