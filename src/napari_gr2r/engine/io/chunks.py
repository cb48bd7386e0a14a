"""Blocks placed inside the chunks of a lazy array, so that reading one decompresses as few
chunks as the block's size allows."""

from __future__ import annotations

import numpy as np


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
