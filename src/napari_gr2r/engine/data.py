"""Axes, input checks, normalisation, noise-level estimation and patch sampling.

Arrays may be numpy arrays (memory-mapped TIFFs included), dask arrays or zarr arrays. Lazy
arrays are never read whole: statistics come from a sample of blocks and training patches
from a bounded pool of blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import AxesError, InputError

AXIS_LETTERS = "TSCZYX"
SAMPLE_LETTERS = "TS"
MAX_CHANNELS = 16
MIN_TRAIN_SIDE = 16
IN_MEMORY_LIMIT = 64 * 2**20  # elements; above this even numpy arrays are sampled


# --------------------------------------------------------------------------------------------
# axes


@dataclass(frozen=True)
class AxesInfo:
    """How an array's dimensions map onto (samples..., C, Z, Y, X)."""

    axes: str
    shape: tuple[int, ...]

    @property
    def sample_axes(self) -> str:
        return "".join(a for a in self.axes if a in SAMPLE_LETTERS)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[self.axes.index(a)] for a in self.sample_axes)

    @property
    def n_samples(self) -> int:
        return math.prod(self.sample_shape)

    def size(self, letter: str) -> int:
        return self.shape[self.axes.index(letter)] if letter in self.axes else 1

    @property
    def n_channels(self) -> int:
        return self.size("C")

    @property
    def czyx(self) -> tuple[int, int, int, int]:
        return (self.size("C"), self.size("Z"), self.size("Y"), self.size("X"))

    @property
    def order(self) -> tuple[int, ...]:
        """Permutation that brings the array to (samples..., [C], [Z], Y, X)."""
        letters = self.sample_axes + "".join(a for a in "CZYX" if a in self.axes)
        return tuple(self.axes.index(a) for a in letters)


def parse_axes(axes: str, shape: tuple[int, ...]) -> AxesInfo:
    """Check that ``axes`` describes an array of ``shape`` and return its :class:`AxesInfo`.

    Letters: ``T`` or ``S`` (independent samples: time points, positions), ``C`` (channels),
    ``Z``, ``Y``, ``X``. Examples: ``"YX"``, ``"ZYX"``, ``"TYX"``, ``"YXC"``, ``"TCZYX"``.
    """
    shape = tuple(int(s) for s in shape)
    example = {2: "YX", 3: "ZYX or TYX or YXC", 4: "TZYX or CZYX", 5: "TCZYX"}.get(len(shape), "YX")
    if not isinstance(axes, str) or not axes.strip():
        raise AxesError(
            f"Axes must be a string with one letter per dimension, such as {example!r} "
            f"for an image of shape {shape}."
        )
    axes = axes.strip().upper()
    unknown = sorted({a for a in axes if a not in AXIS_LETTERS})
    if unknown:
        raise AxesError(
            f"Unknown axis letter(s) {', '.join(unknown)} in {axes!r}. Use T or S for independent "
            "samples (time points, positions), C for channels, and Z, Y, X for space."
        )
    repeated = sorted({a for a in axes if axes.count(a) > 1})
    if repeated:
        raise AxesError(f"Axis letter(s) {', '.join(repeated)} appear more than once in {axes!r}.")
    if len(axes) != len(shape):
        raise AxesError(
            f"Axes {axes!r} have {len(axes)} letters but the image has {len(shape)} dimensions "
            f"(shape {shape}); give one letter per dimension, e.g. {example!r}."
        )
    if "Y" not in axes or "X" not in axes:
        raise AxesError(f"Axes {axes!r} must contain both Y and X (the image plane).")
    if 0 in shape:
        raise InputError(f"The image is empty (shape {shape}); there is nothing to denoise.")
    info = AxesInfo(axes, shape)
    for letter in "YX":
        if info.size(letter) < 2:
            raise InputError(
                f"Axis {letter} has only {info.size(letter)} pixel; an image needs at least 2 "
                f"pixels in Y and X. Check the axes string {axes!r} against the shape {shape}."
            )
    if info.n_channels > MAX_CHANNELS:
        raise AxesError(
            f"Axis C has {info.n_channels} entries, more than the {MAX_CHANNELS} channels "
            "supported; if it is really depth or time, label it Z or T."
        )
    return info


def guess_axes(shape: tuple[int, ...], rgb: bool = False) -> str:
    """A reasonable default axes string for an array shape (``rgb``: last axis is colour)."""
    ndim = len(shape)
    if rgb:
        return {3: "YXC", 4: "ZYXC", 5: "TZYXC"}.get(ndim, "YXC")
    return {2: "YX", 3: "ZYX", 4: "TZYX", 5: "TCZYX"}.get(ndim, "YX")


# --------------------------------------------------------------------------------------------
# input checks and lazy access


def as_lazy_or_numpy(data: Any) -> Any:
    """Numpy and dask arrays pass through; zarr and other array-likes become dask arrays."""
    if isinstance(data, np.ndarray):
        return data
    module = type(data).__module__.split(".")[0]
    if module == "dask":
        return data
    if hasattr(data, "shape") and hasattr(data, "dtype") and hasattr(data, "__getitem__"):
        import dask.array as da

        chunks = getattr(data, "chunks", "auto")
        if not isinstance(chunks, tuple):
            chunks = "auto"
        return da.from_array(data, chunks=chunks, asarray=True, fancy=False)
    if isinstance(data, (list, tuple)):
        return np.asarray(data)
    raise InputError(
        f"Cannot denoise an object of type {type(data).__name__}; pass a numpy, dask or zarr "
        "array (or a path on the command line)."
    )


def check_dtype(dtype: np.dtype) -> None:
    """Integers and floats are accepted; booleans, complex numbers and others are not."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        raise InputError(
            "The image is boolean (a mask?); denoising needs intensities. Use an integer or "
            "float image, or convert a label/mask layer to an image first if that is intended."
        )
    if dtype.kind == "c":
        raise InputError(
            "The image has complex values; denoise the magnitude (np.abs) or the real and "
            "imaginary parts as channels instead."
        )
    if dtype.kind not in "uif":
        raise InputError(f"Unsupported pixel type {dtype}; use an integer or float image.")


def check_finite(block: np.ndarray, where: str = "") -> None:
    if block.dtype.kind == "f" and not np.isfinite(block).all():
        bad = int(block.size - np.count_nonzero(np.isfinite(block)))
        raise InputError(
            f"The image contains {bad} NaN or infinite pixel(s){where}; replace them first, "
            "e.g. with np.nan_to_num(image, nan=np.nanmedian(image))."
        )


def is_in_memory(arr: Any) -> bool:
    return isinstance(arr, np.ndarray) and not isinstance(arr, np.memmap) and \
        arr.size <= IN_MEMORY_LIMIT


def random_start(rng: np.random.Generator, lo: int, hi: int, size: int,
                 chunk: int | None = None) -> int:
    """A random start for a block of ``size`` within ``[lo, hi)``.

    With a ``chunk`` size (of a lazy array), the block is placed inside one chunk whenever a
    chunk can hold it, so reading it decompresses one chunk along this axis, not two.

    >>> rng = np.random.default_rng(0)
    >>> starts = [random_start(rng, 0, 1000, 100, 256) for _ in range(200)]
    >>> all(s // 256 == (s + 99) // 256 for s in starts)
    True
    """
    if chunk is None or chunk >= hi - lo or size > chunk:
        return lo + int(rng.integers(hi - lo - size + 1))
    ks = np.arange(lo // chunk, (hi - 1) // chunk + 1)
    starts = np.maximum(lo, ks * chunk)
    room = np.minimum(hi, (ks + 1) * chunk) - starts - size
    usable = np.flatnonzero(room >= 0)
    if usable.size == 0:
        return lo + int(rng.integers(hi - lo - size + 1))
    k = usable[int(rng.integers(usable.size))]
    return int(starts[k]) + int(rng.integers(room[k] + 1))


class ImageSource:
    """Read access to an N-D image in the canonical layout (sample, C, Z, Y, X).

    Nothing is read until :meth:`read` is called, and then only the requested block.
    """

    def __init__(self, data: Any, axes: str) -> None:
        arr = as_lazy_or_numpy(data)
        self.info = parse_axes(axes, arr.shape)
        check_dtype(arr.dtype)
        self.dtype = np.dtype(arr.dtype)
        arr = arr.transpose(self.info.order)
        # insert missing C and Z after the sample axes
        n_lead = len(self.info.sample_axes)
        index: list[Any] = [slice(None)] * n_lead
        index += [slice(None)] if "C" in self.info.axes else [None]
        index += [slice(None)] if "Z" in self.info.axes else [None]
        index += [slice(None), slice(None)]
        self._arr = arr[tuple(index)]
        self.in_memory = is_in_memory(arr)
        chunksize = getattr(self._arr, "chunksize", None)
        self.chunks: tuple[int, int, int] | None = \
            tuple(int(c) for c in chunksize[-3:]) if chunksize is not None else None
        """Chunk size (Z, Y, X) of a lazy array: random blocks are placed inside chunks."""
        if self.in_memory:
            check_finite(self._arr)

    @property
    def n_samples(self) -> int:
        return self.info.n_samples

    @property
    def czyx(self) -> tuple[int, int, int, int]:
        return self.info.czyx

    def read(self, sample: int, z: slice = slice(None), y: slice = slice(None),
             x: slice = slice(None)) -> np.ndarray:
        """Block ``(C, Z, Y, X)`` of one sample as float32, in the input's intensity units."""
        lead = np.unravel_index(sample, self.info.sample_shape) if self.info.sample_shape else ()
        block = self._arr[(*(int(i) for i in lead), slice(None), z, y, x)]
        block = np.asarray(block, dtype=np.float32)
        if not self.in_memory:
            check_finite(block, f" in sample {sample}")
        return block

    def random_blocks(self, rng: np.random.Generator, count: int,
                      size: tuple[int, int, int]) -> list[np.ndarray]:
        """Up to ``count`` random blocks of at most ``size`` (Z, Y, X), for statistics."""
        _, nz, ny, nx = self.czyx
        bz, by, bx = min(size[0], nz), min(size[1], ny), min(size[2], nx)
        chunks = self.chunks or (None, None, None)
        blocks = []
        for _ in range(count):
            s = int(rng.integers(self.n_samples))
            z0, y0, x0 = (random_start(rng, 0, n, b, c)
                          for n, b, c in zip((nz, ny, nx), (bz, by, bx), chunks))
            blocks.append(self.read(s, slice(z0, z0 + bz), slice(y0, y0 + by),
                                    slice(x0, x0 + bx)))
        return blocks

    def statistics_blocks(self, rng: np.random.Generator) -> list[np.ndarray]:
        """The whole image when it is small and in memory, else a sample of blocks."""
        if self.in_memory:
            return [self.read(s) for s in range(self.n_samples)]
        return self.random_blocks(rng, 24, (16, 256, 256))


# --------------------------------------------------------------------------------------------
# normalisation and noise level


@dataclass
class Normalization:
    """Per-channel robust percentile scaling: ``(x - low) / (high - low)``."""

    low: list[float]
    high: list[float]

    @classmethod
    def fit(cls, blocks: list[np.ndarray], pmin: float = 1.0, pmax: float = 99.9) -> Normalization:
        channels = blocks[0].shape[0]
        lows, highs = [], []
        for c in range(channels):
            values = np.concatenate([b[c].ravel() for b in blocks])
            if values.size > 4_000_000:
                values = values[:: values.size // 4_000_000 + 1]
            lo, hi = np.percentile(values, [pmin, pmax])
            if hi - lo <= 1e-12 * max(1.0, abs(hi)):
                lo, hi = float(values.min()), float(values.max())
            if hi - lo <= 1e-12 * max(1.0, abs(hi)):
                raise InputError(
                    f"Channel {c} of the image is constant ({lo:g}); there is no signal or noise "
                    "to learn from."
                )
            lows.append(float(lo))
            highs.append(float(hi))
        return cls(lows, highs)

    def _shape(self, values: list[float], ndim: int) -> np.ndarray:
        return np.asarray(values, np.float32).reshape((-1,) + (1,) * (ndim - 1))

    def apply(self, block: np.ndarray) -> np.ndarray:
        """Normalise a ``(C, ...)`` block."""
        lo, hi = self._shape(self.low, block.ndim), self._shape(self.high, block.ndim)
        return ((block - lo) / (hi - lo)).astype(np.float32, copy=False)

    def invert(self, block: np.ndarray) -> np.ndarray:
        lo, hi = self._shape(self.low, block.ndim), self._shape(self.high, block.ndim)
        return (block * (hi - lo) + lo).astype(np.float32, copy=False)

    def scale(self, c: int) -> float:
        return self.high[c] - self.low[c]


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
    radius = rho.shape[0] // 2
    grid = np.zeros((n, n))
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            grid[dy % n, dx % n] = rho[dy + radius, dx + radius]
    spectrum = np.clip(np.real(np.fft.fft2(grid)), 0, None)
    kernel = np.fft.fftshift(np.real(np.fft.ifft2(np.sqrt(spectrum))))
    kernel = kernel[n // 2 - radius:n // 2 + radius + 1, n // 2 - radius:n // 2 + radius + 1]
    return (kernel / np.sqrt(np.sum(kernel**2))).astype(np.float32)


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


# --------------------------------------------------------------------------------------------
# patches


@dataclass(frozen=True)
class Region:
    """A part of the image: a range of samples and a range of rows (Y)."""

    samples: tuple[int, int]
    rows: tuple[int, int]

    @property
    def height(self) -> int:
        return self.rows[1] - self.rows[0]


def split_regions(info: AxesInfo, val_fraction: float, patch_y: int) -> tuple[Region, Region | None]:
    """Hold out whole samples when there are several, else the last rows of the image."""
    n, ny = info.n_samples, info.size("Y")
    if val_fraction <= 0:
        return Region((0, n), (0, ny)), None
    if n >= 4:
        k = max(1, round(val_fraction * n))
        return Region((0, n - k), (0, ny)), Region((n - k, n), (0, ny))
    rows = max(round(val_fraction * ny), min(patch_y, ny // 4), 8)
    if ny - rows < MIN_TRAIN_SIDE:
        return Region((0, n), (0, ny)), None
    return Region((0, n), (0, ny - rows)), Region((0, n), (ny - rows, ny))


class PatchSampler:
    """Random normalised patches from one region of an :class:`ImageSource`.

    In-memory images are sliced directly. Lazy images fill a pool of ``pool_blocks`` blocks
    (each a few patches wide) and replace one block every ``refresh_every`` draws, so memory
    stays bounded and only the chunks under the blocks are read.
    """

    def __init__(self, source: ImageSource, norm: Normalization, region: Region,
                 patch: tuple[int, int, int], rng: np.random.Generator, flat_z: bool,
                 target: ImageSource | None = None, augment: bool = True,
                 pool_blocks: int = 16, refresh_every: int = 32) -> None:
        self.source, self.norm, self.region, self.rng = source, norm, region, rng
        self.target = target
        self.flat_z, self.augment = flat_z, augment
        _, nz, _, nx = source.czyx
        pz = 1 if flat_z else min(patch[0], nz)
        self.patch = (pz, min(patch[1], region.height), min(patch[2], nx))
        self.lazy = not source.in_memory
        self._draws = 0
        self.refresh_every = refresh_every
        if self.lazy:
            self._pool = [self._load_block() for _ in range(pool_blocks)]

    def _load_block(self) -> tuple[np.ndarray, np.ndarray | None]:
        _, nz, _, nx = self.source.czyx
        pz, py, px = self.patch
        bz = min(nz, 4 if self.flat_z else pz * 2)
        by, bx = min(self.region.height, py * 4), min(nx, px * 4)
        s = int(self.rng.integers(*self.region.samples))
        cz, cy, cx = self.source.chunks or (None, None, None)
        z0 = random_start(self.rng, 0, nz, bz, cz)
        y0 = random_start(self.rng, *self.region.rows, by, cy)
        x0 = random_start(self.rng, 0, nx, bx, cx)
        sl = (slice(z0, z0 + bz), slice(y0, y0 + by), slice(x0, x0 + bx))
        noisy = self.norm.apply(self.source.read(s, *sl))
        clean = self.norm.apply(self.target.read(s, *sl)) if self.target is not None else None
        return noisy, clean

    def _crop(self, arrays: tuple[np.ndarray, np.ndarray | None], z0: int, y0: int, x0: int,
              ) -> list[np.ndarray]:
        pz, py, px = self.patch
        out = []
        for a in arrays:
            if a is not None:
                out.append(a[:, z0:z0 + pz, y0:y0 + py, x0:x0 + px])
        return out

    def draw(self) -> list[np.ndarray]:
        """One patch ``(C, Z, Y, X)`` (``Z == 1`` for a 2D network), plus its target if any."""
        pz, py, px = self.patch
        self._draws += 1
        if self.lazy:
            if self._draws % self.refresh_every == 0:
                self._pool[int(self.rng.integers(len(self._pool)))] = self._load_block()
            block = self._pool[int(self.rng.integers(len(self._pool)))]
            _, bz, by, bx = block[0].shape
            z0, y0, x0 = (int(self.rng.integers(b - p + 1)) for b, p in
                          ((bz, pz), (by, py), (bx, px)))
            patches = self._crop(block, z0, y0, x0)
        else:
            _, nz, _, nx = self.source.czyx
            s = int(self.rng.integers(*self.region.samples))
            z0 = int(self.rng.integers(nz - pz + 1))
            y0 = self.region.rows[0] + int(self.rng.integers(self.region.height - py + 1))
            x0 = int(self.rng.integers(nx - px + 1))
            sl = (slice(z0, z0 + pz), slice(y0, y0 + py), slice(x0, x0 + px))
            patches = [self.norm.apply(self.source.read(s, *sl))]
            if self.target is not None:
                patches.append(self.norm.apply(self.target.read(s, *sl)))
        if self.augment:
            patches = self._augment(patches)
        return [np.ascontiguousarray(p) for p in patches]

    def _augment(self, patches: list[np.ndarray]) -> list[np.ndarray]:
        flips = [ax for ax in (-1, -2) if self.rng.random() < 0.5]
        if not self.flat_z and self.patch[0] > 1 and self.rng.random() < 0.5:
            flips.append(-3)
        k = int(self.rng.integers(4)) if self.patch[1] == self.patch[2] else 0
        out = []
        for p in patches:
            if flips:
                p = np.flip(p, axis=flips)
            if k:
                p = np.rot90(p, k, axes=(-2, -1))
            out.append(p)
        return out

    def batch(self, size: int) -> list[np.ndarray]:
        """``size`` patches stacked: ``(B, C, Y, X)`` for 2D, ``(B, C, Z, Y, X)`` for 3D."""
        draws = [self.draw() for _ in range(size)]
        stacked = [np.stack([d[i] for d in draws]) for i in range(len(draws[0]))]
        if self.flat_z:
            stacked = [s[:, :, 0] for s in stacked]
        return stacked
