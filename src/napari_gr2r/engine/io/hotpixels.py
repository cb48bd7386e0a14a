"""Hot and dead pixels: isolated pixels far above (or below) all their neighbours.

A camera's hot pixels, cosmic-ray hits and dead pixels are single pixels that did not pass
through the optics: light that did is spread by the point-spread function, so a real spot
raises its neighbours too. A network trained on the image sees such a pixel rarely, far outside
the intensities it learned, and its response spreads it into a spot of the network's
receptive field: a hot pixel would come out as a blurred dot that looks like a real
particle. So a pixel is taken for one and replaced by the median of its eight neighbours
before anything reads it when all of these hold:

- it lies ``SIGMAS`` noise standard deviations or more from the median of the 24 pixels
  around it (the 5x5 square without it), the noise's at that median from the image's noise
  model, and ``TEXTURE`` times or more the spread of its eight neighbours (larger where
  there is texture or a spot's slope);
- for a noise model with a gain (Poisson-Gaussian), by ``PHOTONS`` photons or more, so
  that the few-photon tails of counting noise are never taken for one;
- its four nearest neighbours depart from that median, on average and the same way, by less
  than ``SPREAD`` of its own departure: the point-spread function left no trace of it around
  it (a spot sampled at one pixel per half width still raises them by a sixth of its peak).

A pixel on the image's edge is never taken for one. An image sampled so coarsely that a real
spot fits in one pixel (``TrainConfig(hot_pixels=False)`` keeps it as it is) is the exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SIGMAS = 12.0
TEXTURE = 6.0
PHOTONS = 20.0
SPREAD = 0.05
HALO = 2
"""Pixels on each side of a block that the test reads (the 5x5 square)."""


@dataclass(frozen=True)
class HotPixelRule:
    """The noise variance ``gain[c] * max(x, low[c]) + offset[c]`` per channel, in the
    input's units, that :func:`repair_block` measures departures against."""

    gain: tuple[float, ...]
    offset: tuple[float, ...]
    low: tuple[float, ...]

    def variance(self, c: int, x: np.ndarray) -> np.ndarray:
        return np.maximum(self.gain[c] * np.maximum(x - self.low[c], 0.0) + self.offset[c], 0.0)

    def sd(self, c: int, x: np.ndarray) -> np.ndarray:
        return np.sqrt(self.variance(c, x))

    @classmethod
    def from_noise(cls, level: Any, norm: Any) -> HotPixelRule:
        """From a :class:`~napari_gr2r.engine.noise.level.NoiseLevel` in the normalised
        units of ``norm`` (a :class:`~napari_gr2r.engine.data.normalization.Normalization`)."""
        gains, offsets, lows = [], [], []
        for c in range(len(level.a)):
            s = norm.scale(c)
            gains.append(float(level.a[c] * s))
            offsets.append(float(level.b[c] * s * s))
            lows.append(float(norm.low[c]))
        return cls(tuple(gains), tuple(offsets), tuple(lows))


def find_in_plane(plane: np.ndarray, rule: HotPixelRule, c: int = 0) -> np.ndarray:
    """Boolean mask of the hot and dead pixels of one YX ``plane`` (channel ``c``)."""
    p = np.asarray(plane, np.float32)
    ny, nx = p.shape
    if min(ny, nx) < 3:
        return np.zeros(p.shape, bool)
    # a cheap screen first, of the pixels that have eight neighbours: beyond every one of
    # them by the threshold at that neighbour
    inner = p[1:-1, 1:-1]
    ring = [p[1 + dy:ny - 1 + dy, 1 + dx:nx - 1 + dx]
            for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    high, low = np.maximum.reduce(ring), np.minimum.reduce(ring)
    above, below = inner - high, low - inner
    screen = ((above > 0) & (above * above > SIGMAS**2 * rule.variance(c, high))) | \
        ((below > 0) & (below * below > SIGMAS**2 * rule.variance(c, inner)))
    ys, xs = np.nonzero(screen)
    mask = np.zeros(p.shape, bool)
    if len(ys) == 0:
        return mask
    ys, xs = ys + 1, xs + 1
    padded = np.pad(p, HALO, mode="reflect")
    offsets = [(dy, dx) for dy in range(-HALO, HALO + 1) for dx in range(-HALO, HALO + 1)
               if (dy, dx) != (0, 0)]
    around = np.stack([padded[ys + HALO + dy, xs + HALO + dx] for dy, dx in offsets],
                      axis=1).astype(np.float64)
    edge = np.array([abs(dy) + abs(dx) == 1 for dy, dx in offsets])
    near = np.array([max(abs(dy), abs(dx)) == 1 for dy, dx in offsets])
    centre = p[ys, xs].astype(np.float64)
    median = np.median(around, axis=1)
    eight = around[:, near]
    spread = 1.4826 * np.median(np.abs(eight - np.median(eight, axis=1)[:, None]), axis=1)
    departure = centre - median
    threshold = np.maximum(SIGMAS * rule.sd(c, median), TEXTURE * spread)
    sign = np.sign(departure)
    neighbour = np.mean(sign[:, None] * (around[:, edge] - median[:, None]), axis=1)
    hot = (np.abs(departure) >= threshold) & (neighbour < SPREAD * np.abs(departure))
    if rule.gain[c] > 0:
        hot &= np.abs(departure) >= PHOTONS * rule.gain[c]
    mask[ys[hot], xs[hot]] = True
    return mask


class HotPixelWarning(UserWarning):
    """Isolated hot or dead pixels were replaced before the network saw them."""


def hot_pixel_message(count: int, advice: bool = True) -> str:
    """What is said of ``count`` replaced pixels (``advice``: how to keep them)."""
    many = count != 1
    text = (f"{count} isolated pixel{'s' if many else ''} far above or below all "
            f"{'their' if many else 'its'} neighbours (hot or dead camera pixels, cosmic rays) "
            f"{'were' if many else 'was'} replaced by the median of "
            f"{'their' if many else 'its'} neighbours before denoising")
    return text + ("; train with hot_pixels=False (--keep-hot-pixels) to keep such pixels."
                   if advice else ".")


def repair_block(block: np.ndarray, rule: HotPixelRule) -> tuple[np.ndarray, np.ndarray]:
    """``(block, mask)``: a ``(C, Z, Y, X)`` float block with its hot and dead pixels replaced
    by the median of their eight neighbours (a copy where any are), and where they were."""
    mask = np.zeros(block.shape, bool)
    for c in range(block.shape[0]):
        for z in range(block.shape[1]):
            mask[c, z] = find_in_plane(block[c, z], rule, c)
    if not mask.any():
        return block, mask
    out = block.copy()
    for c, z in {(int(c), int(z)) for c, z in zip(*np.nonzero(mask)[:2])}:
        ys, xs = np.nonzero(mask[c, z])
        padded = np.pad(block[c, z], 1, mode="reflect")
        around = np.stack([padded[ys + 1 + dy, xs + 1 + dx] for dy in (-1, 0, 1)
                           for dx in (-1, 0, 1) if (dy, dx) != (0, 0)], axis=1)
        out[c, z, ys, xs] = np.median(around, axis=1)
    return out, mask


def read_repaired(source: Any, sample: int, z: slice, y: slice, x: slice) -> np.ndarray:
    """:meth:`ImageSource.read <napari_gr2r.engine.io.sources.ImageSource.read>` with the
    source's ``hot_pixels`` rule: the block read with ``HALO`` pixels more on each side, so
    that a pixel is judged alike in every block that holds it (within the image, and within
    the chunks the block touches: a lazy array's blocks are placed inside chunks, and widening
    them must not decompress another, so a pixel on a chunk's edge may go untested in a block
    that ends there); where they were goes to ``hot_pixels_found``."""
    where = f" in sample {sample}"
    if y.step not in (None, 1) or x.step not in (None, 1):
        return source._as_float32(source.read_native(sample, z, y, x), where)
    spans = []
    for axis, span in ((1, y), (2, x)):
        n = source.czyx[axis + 1]
        start, stop, _ = span.indices(n)
        lo, hi = max(0, start - HALO), min(n, stop + HALO)
        if source.chunks is not None and stop > start:
            size = source.chunks[axis]
            lo, hi = max(lo, start // size * size), min(hi, ((stop - 1) // size + 1) * size)
        spans.append((start, stop, lo, hi))
    (y0, y1, ya, yb), (x0, x1, xa, xb) = spans
    block = source._as_float32(source.read_native(sample, z, slice(ya, yb), slice(xa, xb)),
                               where)
    block, mask = repair_block(block, source.hot_pixels)
    inner = (slice(None), slice(None), slice(y0 - ya, y1 - ya), slice(x0 - xa, x1 - xa))
    if mask[inner].any():
        z0 = z.indices(source.czyx[1])[0] if isinstance(z, slice) else int(z)
        for c, k, j, i in zip(*np.nonzero(mask[inner])):
            source.hot_pixels_found.add((sample, int(c), z0 + int(k), y0 + int(j), x0 + int(i)))
    return block[inner]
