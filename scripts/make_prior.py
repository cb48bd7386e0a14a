"""Build the ``fast`` network's pretrained prior, ``engine/model/prior_fast.pt``.

::

    python scripts/make_prior.py src/napari_gr2r/engine/model/prior_fast.pt   # about 8 min, 2 cores

and the three more priors an ensemble's members start from (``model/prior.py``,
``MEMBER_PRIORS``; three times the steps and scenes, 22 min each on 2 cores, or two side by
side with ``--threads 1`` in about 47 min)::

    python scripts/make_prior.py src/napari_gr2r/engine/model/prior_fast_2.pt \
        --steps 24000 --pairs 3000 --val-every 500
    python scripts/make_prior.py src/napari_gr2r/engine/model/prior_fast_3.pt \
        --steps 24000 --pairs 3000 --val-every 500 --seed 1
    python scripts/make_prior.py src/napari_gr2r/engine/model/prior_fast_4.pt \
        --steps 24000 --pairs 3000 --val-every 500 --seed 2

The ``fast`` U-Net (width 16, depth 2, one channel) trained with ``method="n2c"`` on 1000
generated 128 x 128 noisy/clean pairs: fluorescence-like scenes drawn here (filaments, textured
nuclei, puncta, a smooth background, blurred by a point spread function), each with Poisson noise
at a random photon count (3 to 300 at the brightest pixel) plus Gaussian read noise, correlated
along one or both axes in three cases of ten, stored as an 8-bit capture (clipped) in four of
ten, and scaled as the engine scales a training image (its 1st and 99.9th percentiles to 0 and 1).
No existing image is used: not the real-noise benchmark's FMD captures, nor the clean images of
the bundled samples, the tests or the synthetic benchmarks, so that none of their figures
measures an image the prior has seen.

Training starts from these weights (``TrainConfig(start="prior")``, the ``fast`` preset's
default) and adapts them to the image with the self-supervised objective; why, and what it
changes, is in docs/method-notes.md ("A pretrained start"). Seeded: the same machine and torch
build give the same weights; ``--seed`` draws other scenes and another start of the network.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy import ndimage as ndi

SIZE = 128
PAIRS = 1000
STEPS = 8000


def _filaments(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``n`` gently curving lines of random length and brightness, one pixel wide."""
    img = np.zeros((size, size))
    for _ in range(n):
        p = rng.uniform(0, size, 2)
        ang = rng.uniform(0, 2 * np.pi)
        curv = rng.normal(0, 0.01)
        length = rng.integers(size // 4, size * 2)
        w = rng.uniform(0.3, 1.0)
        for _ in range(length):
            ang += curv + rng.normal(0, 0.01)
            p = p + [np.sin(ang), np.cos(ang)]
            i, j = int(p[0]), int(p[1])
            if 0 <= i < size and 0 <= j < size:
                img[i, j] += w
    return img


def _nuclei(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``n`` ellipses of 6 to 25 pixels' radius with a smooth random texture."""
    yy, xx = np.mgrid[:size, :size]
    img = np.zeros((size, size))
    for _ in range(n):
        cy, cx = rng.uniform(0, size, 2)
        a, b = rng.uniform(6, 25, 2)
        t = rng.uniform(0, np.pi)
        y, x = yy - cy, xx - cx
        u = (x * np.cos(t) + y * np.sin(t)) / a
        v = (-x * np.sin(t) + y * np.cos(t)) / b
        inside = (u * u + v * v) < 1
        value = rng.uniform(0.3, 1.0)
        tex = ndi.gaussian_filter(rng.standard_normal((size, size)), rng.uniform(1, 3))
        tex = 1 + 0.5 * tex / (tex.std() + 1e-9)
        img += inside * value * np.clip(tex, 0, None)
    return img


def scene(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """A clean fluorescence-like image on 0..1: filaments, nuclei, puncta or a mixture."""
    kind = rng.integers(0, 4)
    img = np.zeros((size, size))
    if kind in (0, 3):
        img += _filaments(rng, rng.integers(20, 150), size) * rng.uniform(0.5, 2)
    if kind in (1, 3):
        img += ndi.gaussian_filter(_nuclei(rng, rng.integers(3, 15), size), 1.0)
    if kind == 2 or rng.random() < 0.5:
        pts = np.zeros((size, size))
        k = rng.integers(20, 400)
        pts[rng.integers(0, size, k), rng.integers(0, size, k)] = rng.uniform(0.3, 3, k)
        img += pts
    img = ndi.gaussian_filter(img, rng.uniform(0.7, 2.0))  # the point spread function
    img += ndi.gaussian_filter(rng.random((size, size)), 20) * rng.uniform(0, 0.3) * img.max()
    img = img / (img.max() + 1e-9)
    return img ** rng.uniform(0.6, 1.4)


def noisy_pair(rng: np.random.Generator, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(noisy, clean)`` of a clean 0..1 image, both scaled as the engine scales the noisy one."""
    peak = np.exp(rng.uniform(np.log(3), np.log(300)))
    x = (clean + rng.uniform(0, 0.1)) * peak
    y = rng.poisson(x).astype(np.float64)
    read = rng.uniform(0, 0.08) * peak
    g = rng.standard_normal(clean.shape) * read
    if rng.random() < 0.3:  # correlated noise: a camera's read-out, a scan line
        k = rng.uniform(0.3, 1.0)
        g = ndi.gaussian_filter(g, (rng.uniform(0, 1) * k, k))
        g *= read / (g.std() + 1e-9)
        y = x + ndi.gaussian_filter(y - x, (0.0, rng.uniform(0, 0.8)))
    y = y + g
    if rng.random() < 0.4:  # an 8-bit capture: rounded, clipped at 0 and 255
        s = rng.uniform(0.5, 2.0) * 200 / max(np.percentile(y, 99.9), 1e-9)
        y = np.clip(np.round(y * s), 0, 255) / s
    lo, hi = np.percentile(y, [1, 99.9])
    if hi - lo < 1e-6:
        hi = lo + 1
    return ((y - lo) / (hi - lo)).astype(np.float32), ((x - lo) / (hi - lo)).astype(np.float32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the .pt file to write (the network's state_dict)")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--pairs", type=int, default=PAIRS)
    parser.add_argument("--seed", type=int, default=0,
                        help="draws another set of scenes and another start of the network "
                             "(0: the shipped prior_fast.pt)")
    parser.add_argument("--val-every", type=int, default=50,
                        help="steps between validations (each scores all held-out pairs)")
    parser.add_argument("--width", type=int, default=16,
                        help="the U-Net's width (16: the fast preset's network)")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads (1 to build two priors side by side on two cores)")
    args = parser.parse_args(argv)

    import torch

    from napari_gr2r import engine

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(123 if args.seed == 0 else [123, args.seed])
    noisy, clean = [], []
    for _ in range(args.pairs):
        n, c = noisy_pair(rng, scene(rng))
        noisy.append(n)
        clean.append(c)
    config = engine.TrainConfig.from_preset("fast", method="n2c", seed=args.seed, net_dims="2d",
                                            start="scratch", steps=args.steps,
                                            val_every=args.val_every, width=args.width)
    trainer = engine.Trainer(noisy, "YX", config, target=clean, device="cpu")
    t0 = time.perf_counter()
    for event in trainer.iter_fit():
        if isinstance(event, engine.TrainingProgress) and event.step % 500 == 0:
            print(f"step {event.step}: loss {event.loss:.5f} ({time.perf_counter() - t0:.0f} s)",
                  file=sys.stderr, flush=True)
    torch.save(trainer.model.net.state_dict(), args.out)
    print(f"wrote {args.out}: best step {trainer.model.best_step} of {args.steps}, "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
