"""Per-channel intensity scaling between the input's units and the network's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass
class Normalization:
    """Per-channel robust percentile scaling: ``(x - low) / (high - low)``."""

    low: list[float]
    high: list[float]

    @classmethod
    def fit(cls, blocks: list[np.ndarray], pmin: float = 1.0, pmax: float = 99.9) -> Normalization:
        """Percentiles ``pmin`` and ``pmax`` of each channel of ``(C, ...)`` blocks.

        A channel is constant when its range is within float32 rounding of its magnitude
        (a relative test: an image scaled by 1e-15 is not constant).
        """
        channels = blocks[0].shape[0]
        lows, highs = [], []
        for c in range(channels):
            values = np.concatenate([b[c].ravel() for b in blocks])
            if values.size > 4_000_000:
                values = values[:: values.size // 4_000_000 + 1]
            lo, hi = (float(v) for v in np.percentile(values.astype(np.float64), [pmin, pmax]))
            if _flat(lo, hi):
                lo, hi = float(values.min()), float(values.max())
            if _flat(lo, hi):
                raise InputError(
                    f"Channel {c} of the image is constant ({lo:g}); there is no signal or noise "
                    "to learn from. Check that this is the image (and channel) you meant."
                )
            with np.errstate(over="ignore"):
                too_wide = not np.isfinite(np.float32(hi) - np.float32(lo))
            if too_wide:
                raise InputError(
                    f"Channel {c} of the image spans {lo:.3g} to {hi:.3g}, a range wider than "
                    "float32 (in which the network computes) can hold; divide the image by a "
                    "constant first (e.g. image / 1e30) and multiply the result back."
                )
            lows.append(lo)
            highs.append(hi)
        return cls(lows, highs)

    def check(self, source: str = "The normalisation") -> None:
        """Raise :class:`InputError` unless every channel has finite ``low < high``."""
        try:
            pairs = [(float(lo), float(hi)) for lo, hi in zip(self.low, self.high, strict=True)]
        except (TypeError, ValueError):
            raise InputError(f"{source} is not a list of numbers per channel.") from None
        for c, (lo, hi) in enumerate(pairs):
            if not (np.isfinite(lo) and np.isfinite(hi)) or _flat(lo, hi) or hi < lo:
                raise InputError(
                    f"{source} of channel {c} is degenerate (low {lo:g}, high {hi:g}): it "
                    "would turn every image into NaN or a constant."
                )

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


def _flat(lo: float, hi: float) -> bool:
    """Whether ``[lo, hi]`` is an empty range at float32 resolution (relative), or below the
    smallest normal float32 (absolute)."""
    span = hi - lo
    return not span > 4 * float(np.finfo(np.float32).eps) * max(abs(lo), abs(hi)) or \
        span < float(np.finfo(np.float32).tiny) * 1e6
