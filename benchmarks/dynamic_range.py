"""Images of high dynamic range: bright structures on a dark background, where a network's error
near the bright structures can exceed the dark background's noise, with and without a
variance-stabilising transform.

Scenes (generated, one per seed), 256², camera offset 100, gain 1, read noise SD 2:

- ``spots``: 60 diffraction-limited spots (Gaussian, SD 1.5 px), peaks log-uniform between a
  30th of ``--peaks`` and it, on a background of 2 photons;
- ``cells``: 40 cells (``exp(-(r/R)^4)``, R 6-14 px, a mild granular texture), the brightest at the
  peak, on a background of 2 photons.

Methods, each trained on the noisy image alone with the ``fast`` preset (seed 0):

- ``fast``: the engine as it is;
- ``fast+vst``: the generalised Anscombe transform of the noise line the training's fit finds
  (:func:`benchmarks.realnoise_levers.vst_line`) before training and denoising, and its closed-form
  unbiased inverse after (Mäkitalo & Foi 2011), as measured on the real captures in
  ``results/realnoise-levers-fast.md`` ("A variance-stabilising transform").

Scores against the clean image: PSNR over the image (data range: the clean image's), the RMS
error on the dark background (clean under background + 1 % of the peak) divided by the noise SD
there (above 1: the result is worse than the noisy input there), the same within 6 px of the
structures, and the lowest value of the result less the camera offset (a dark halo shows as a
value far below the offset); for ``fast``, whether ``engine.assess`` says, without the clean
image, that the result is worse than the input (``QualityReport.worse_than_input``), per seed.

    python -m benchmarks.dynamic_range --out OUT [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy import ndimage

from .common import psnr

SIZE = 256
OFFSET, READ, BACKGROUND = 100.0, 2.0, 2.0
PEAKS = (30, 300, 3000, 30000)
SCENES = ("spots", "cells")
METHODS = ("fast", "fast+vst")


def scene(kind: str, peak: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(clean, noisy)`` in camera counts."""
    rng = np.random.default_rng([seed, SCENES.index(kind), int(peak)])
    if kind == "spots":
        signal = np.zeros((SIZE, SIZE))
        ys, xs = rng.integers(8, SIZE - 8, (2, 60))
        signal[ys, xs] = np.exp(rng.uniform(np.log(1 / 30), 0, 60))
        signal = ndimage.gaussian_filter(signal, 1.5)
    else:
        signal = np.zeros((SIZE, SIZE))
        yy, xx = np.mgrid[:SIZE, :SIZE]
        for _ in range(40):
            y, x, r = rng.uniform(0, SIZE), rng.uniform(0, SIZE), rng.uniform(6, 14)
            signal += np.exp(-((((yy - y) ** 2 + (xx - x) ** 2) / r**2) ** 2)) * \
                rng.uniform(0.4, 1)
        grain = ndimage.gaussian_filter(rng.standard_normal(signal.shape), 1.5)
        signal = ndimage.gaussian_filter(np.clip(signal * (1 + 0.3 * grain / grain.std()), 0,
                                                 None), 1.0)
    photons = BACKGROUND + peak * signal / signal.max()
    clean = OFFSET + photons
    noisy = OFFSET + rng.poisson(photons) + rng.normal(0, READ, photons.shape)
    return clean, noisy.astype(np.float32)


def run_case(kind: str, peak: float, seed: int, method: str, steps: int | None) -> dict:
    import torch

    from napari_gr2r import engine

    from .realnoise_levers import inverse_vst, vst, vst_line

    torch.set_num_threads(1)
    clean, noisy = scene(kind, peak, seed)
    overrides = {"steps": steps} if steps else {}
    config = engine.TrainConfig.from_preset("fast", seed=0, **overrides)
    t0 = time.perf_counter()
    if method == "fast+vst":
        a, b = vst_line(noisy)
        z = vst(noisy, a, b)
        model = engine.train(z, axes="YX", config=config)
        out = inverse_vst(engine.denoise(model, z, axes="YX"), a, b)
        report = None
    else:
        model = engine.train(noisy, axes="YX", config=config)
        out = engine.denoise(model, noisy, axes="YX")
    seconds = time.perf_counter() - t0  # training and denoising, as for the transform
    if method == "fast":
        report = engine.assess(model, noisy, "YX", device="cpu")
    out = out.astype(np.float64)
    dark = clean < OFFSET + BACKGROUND + 0.01 * peak
    near = dark & ndimage.binary_dilation(~dark, iterations=6)
    noise_sd = np.sqrt(BACKGROUND + READ**2)
    data_range = float(clean.max() - clean.min())

    def rms(mask: np.ndarray) -> float:
        return float(np.sqrt(np.mean((out[mask] - clean[mask]) ** 2)))

    return {"scene": kind, "peak": peak, "seed": seed, "method": method,
            "psnr_noisy": psnr(noisy, clean, data_range), "psnr": psnr(out, clean, data_range),
            "dark_rms_over_noise": rms(dark) / noise_sd, "near_rms_over_noise": rms(near) / noise_sd,
            "lowest_below_offset": float(out.min() - OFFSET), "seconds": seconds,
            **({} if report is None else {"worse_than_input": report.worse_than_input})}


def table(rows: list[dict]) -> str:
    lines = ["| scene | peak (photons) | noisy PSNR | `fast` PSNR | `fast+vst` PSNR | dark RMS / noise "
             "(`fast`, `+vst`) | near structures | lowest − offset | `fast` said "
             "worse than the input |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for kind in SCENES:
        for peak in sorted({r["peak"] for r in rows}):
            got = {m: [r for r in rows if r["scene"] == kind and r["peak"] == peak
                       and r["method"] == m] for m in METHODS}
            if not all(got.values()):
                continue

            def mean(m: str, key: str, got: dict = got) -> float:
                return float(np.mean([r[key] for r in got[m]]))

            lines.append(
                f"| {kind} | {peak:g} | {mean('fast', 'psnr_noisy'):.2f} | "
                f"{mean('fast', 'psnr'):.2f} | {mean('fast+vst', 'psnr'):.2f} | "
                f"{mean('fast', 'dark_rms_over_noise'):.2f}, "
                f"{mean('fast+vst', 'dark_rms_over_noise'):.2f} | "
                f"{mean('fast', 'near_rms_over_noise'):.2f}, "
                f"{mean('fast+vst', 'near_rms_over_noise'):.2f} | "
                f"{min(r['lowest_below_offset'] for r in got['fast']):.1f}, "
                f"{min(r['lowest_below_offset'] for r in got['fast+vst']):.1f} | "
                + ", ".join("yes" if r["worse_than_input"] else "no" for r in got["fast"])
                + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--peaks", default=",".join(str(p) for p in PEAKS))
    parser.add_argument("--steps", type=int, default=None, help="training steps (smoke runs)")
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cases = [(kind, float(peak), seed, method, args.steps) for kind in SCENES
             for peak in args.peaks.split(",") for seed in range(args.seeds) for method in METHODS]
    t0 = time.perf_counter()
    rows = []
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for row in pool.map(run_case, *zip(*cases)):
            rows.append(row)
            print(f"{row['scene']:5s} {row['peak']:7g} seed {row['seed']} {row['method']:8s} "
                  f"{row['psnr_noisy']:.2f} -> {row['psnr']:.2f} dB, dark RMS/noise "
                  f"{row['dark_rms_over_noise']:.2f}, near {row['near_rms_over_noise']:.2f}, "
                  f"lowest-offset {row['lowest_below_offset']:.1f} ({row['seconds']:.0f} s)",
                  file=sys.stderr, flush=True)
    wall = time.perf_counter() - t0
    command = "python -m benchmarks.dynamic_range " + " ".join(argv if argv is not None
                                                               else sys.argv[1:])
    (args.out / "dynamic_range.json").write_text(json.dumps(
        {"command": command, "wall_s": wall, "cpu_count": os.cpu_count(), "rows": rows},
        indent=1))
    (args.out / "dynamic_range.md").write_text(
        f"`{command}`: {len(rows)} runs, {wall:.0f} s of wall time.\n\n{table(rows)}\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
