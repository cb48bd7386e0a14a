"""Per-channel intensity scaling between the input's units and the network's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError


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

