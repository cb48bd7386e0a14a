"""Hot and dead pixels: what replacing them does to a denoised camera image, and how often
the test takes a pixel of a real image for one.

Two parts, both in one run:

1. **Denoising.** A 512² camera image (spots and filaments, photon gain 2, read noise 3,
   offset 100) with 30 hot pixels at the 16-bit ceiling and 30 others 60 noise SDs above
   their surroundings, trained with the ``fast`` preset (seed 0) with ``hot_pixels`` on and
   off; PSNR against the clean image over the whole image, away from the hot pixels (more
   than 8 px) and near them (1-8 px), and the error estimate of ``engine.assess``.
2. **Pixels taken for hot in real images.** The test (with the noise level training fits)
   on every FMD BPAE capture and ground truth, and on the noise-fit development set
   (``benchmarks.noise_fit``: 9 clean images x 5 noises x 3 levels, 2 seeds).

    python -m benchmarks.hotpixels --out OUT
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

from .common import psnr

SHAPE = (512, 512)
GAIN, READ, OFFSET = 2.0, 3.0, 100.0


def camera_scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(clean, noisy, hot)``: spots and filaments seen by a camera, with hot pixels."""
    rng = np.random.default_rng(seed)
    dots = np.zeros(SHAPE)
    dots[tuple(rng.integers(0, 512, (2, 300)))] = rng.uniform(0.3, 1, 300)
    lines = np.zeros(SHAPE)
    for _ in range(40):
        y, x, angle = *rng.uniform(0, 512, 2), rng.uniform(0, np.pi)
        t = np.linspace(-150, 150, 1200)
        ys, xs = (y + t * np.sin(angle)).astype(int), (x + t * np.cos(angle)).astype(int)
        inside = (ys >= 0) & (ys < 512) & (xs >= 0) & (xs < 512)
        lines[ys[inside], xs[inside]] = 0.4
    clean = 2000 * (ndimage.gaussian_filter(dots, 2.0) * 40 + ndimage.gaussian_filter(lines, 1.2))
    clean = OFFSET + 20 + clean * 1500 / clean.max()
    noisy = OFFSET + GAIN * rng.poisson((clean - OFFSET) / GAIN) + rng.normal(0, READ, SHAPE)
    hot = np.zeros(SHAPE, bool)
    ys, xs = rng.integers(4, 508, (2, 60))
    hot[ys, xs] = True
    noisy[ys[:30], xs[:30]] = 65535
    sd = np.sqrt(GAIN * (clean[ys[30:], xs[30:]] - OFFSET) + READ**2)
    noisy[ys[30:], xs[30:]] = clean[ys[30:], xs[30:]] + 60 * sd
    return clean, np.clip(noisy, 0, 65535).astype(np.uint16), hot


def denoising(seed: int = 0) -> list[dict]:
    from napari_gr2r import engine

    clean, noisy, hot = camera_scene(seed)
    near = ndimage.binary_dilation(hot, iterations=8) & ~hot
    away = ~ndimage.binary_dilation(hot, iterations=8)
    peak = float(np.ptp(clean))
    rows = []
    for on in (True, False):
        config = engine.TrainConfig.from_preset("fast", seed=seed, hot_pixels=on)
        t0 = time.perf_counter()
        model = engine.train(noisy, "YX", config, device="cpu")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = engine.denoise(model, noisy, "YX", device="cpu")
        seconds = time.perf_counter() - t0
        report = engine.assess(model, noisy, "YX", device="cpu")
        said = [str(w.message) for w in caught if "isolated" in str(w.message)]
        rows.append({
            "hot_pixels": on, "seconds": round(seconds, 1),
            "psnr": round(psnr(clean, out, peak), 2),
            "psnr_away": round(psnr(clean[away], out[away], peak), 2),
            "psnr_near": round(psnr(clean[near], out[near], peak), 2),
            "noisy_away": round(psnr(clean[away], noisy[away].astype(np.float64), peak), 2),
            "noisy_near": round(psnr(clean[near], noisy[near].astype(np.float64), peak), 2),
            "estimate": report.psnr_text(peak), "said": said[0] if said else None})
    return rows


def _rule(image: np.ndarray):
    from napari_gr2r.engine.data.normalization import Normalization
    from napari_gr2r.engine.io.hotpixels import HotPixelRule
    from napari_gr2r.engine.noise.level import NoiseLevel

    block = image.astype(np.float32)[None, None]
    norm = Normalization.fit([block])
    level = NoiseLevel.estimate([norm.apply(block)], np.random.default_rng(0))
    return HotPixelRule.from_noise(level, norm), block


def found(image: np.ndarray) -> int:
    from napari_gr2r.engine.io.hotpixels import repair_block

    rule, block = _rule(image)
    return int(repair_block(block, rule)[1].sum())


def real_images(seeds: int = 2) -> dict[str, dict[str, int]]:
    from . import noise_fit

    fmd = {}
    for path in sorted((noise_fit.FMD / "raw").glob("*.png")) + \
            sorted((noise_fit.FMD / "gt").glob("*.png")):
        fmd[f"{path.parent.name}/{path.stem}"] = found(noise_fit._png(path))
    dev = {}
    for name, (clean, _) in noise_fit.clean_images(256, noise_fit.FMD).items():
        for kind, levels in noise_fit.LEVELS.items():
            for level in levels:
                for seed in range(seeds):
                    noisy, _ = noise_fit.add_noise(clean, kind, level,
                                                   np.random.default_rng(seed))
                    dev[f"{name} {kind} {level} seed {seed}"] = found(noisy)
    return {"fmd": fmd, "dev": dev}


def report(result: dict) -> str:
    lines = ["| `hot_pixels` | whole image | away from them (> 8 px) | near them (1-8 px) | "
             "estimated |", "| --- | --- | --- | --- | --- |"]
    for r in result["denoising"]:
        lines.append(f"| {r['hot_pixels']} | {r['psnr']} | {r['psnr_away']} | "
                     f"{r['psnr_near']} | {r['estimate']} |")
    noisy = result["denoising"][0]
    lines.append(f"| (noisy input) | | {noisy['noisy_away']} | {noisy['noisy_near']} | |")
    fmd, dev = result["real"]["fmd"], result["real"]["dev"]
    lines += ["", f"FMD captures and ground truths: {sum(fmd.values())} pixels taken for hot "
              f"in {len(fmd)} images ({sum(v > 0 for v in fmd.values())} images with any).",
              f"Development set: {sum(dev.values())} pixels in {len(dev)} cases; cases with "
              f"any: " + (", ".join(f"{k} ({v})" for k, v in dev.items() if v) or "none") + "."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hotpixels",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"denoising": denoising(), "real": real_images()}
    (args.out / "hotpixels.json").write_text(json.dumps(result, indent=1))
    text = report(result)
    (args.out / "hotpixels.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
