"""Monte-Carlo inference (R2R's) against GR2R's single pass, on the FMD development captures.

A GR2R network is trained on recorrupted inputs ``y + n`` (twice the noise's variance) and
applied to ``y``. R2R (Pang et al. 2021) instead averages the network over recorruptions of the
input, ``mean_k f(y + s n_k)``; this measures whether that helps a GR2R model:

- ``plain``: ``f(y)``, one pass (what ``engine.denoise`` does; ``engine`` is its PSNR through
  ``engine.denoise`` itself, tiled, which ``plain`` reproduces);
- ``res``: ``n_k`` is GR2R's own generated noise, the residual ``y - f(y)`` with random signs
  pinned to the model's noise level (``engine.training.losses.pinned_noise``, one scale for the
  image);
- ``gauss``: ``n_k`` is drawn from the model's noise level (variance ``a f(y) + b``, correlated
  with its kernel where the noise is correlated);
- ``s``: the recorruption's share of the noise variance (1: as in training, 0.5: half);
- ``blend``: the mean of ``plain`` and the 16-sample average.

Each capture is trained as ``benchmarks.realnoise_levers`` trains it (``--preset``, seed 0, one
torch thread); the whole capture goes through the network in one pass, mirrored by the
network's receptive radius at its borders. PSNR at data range 255 against the 50-frame ground
truth. A line of JSON per capture goes to ``--log``; a summary table (differences to ``plain``)
is printed.

    python -m benchmarks.mc_inference --captures 1 2 --log OUT.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .common import log_row, psnr
from .realnoise import CONFIGS, RANGE
from .realnoise_levers import distinct_captures, trainer_for

SAMPLES = (1, 4, 16)


def measure(config: str, capture: int, preset: str = "fast", steps: int | None = None,
            seed: int = 123) -> dict:
    import torch

    from napari_gr2r import engine
    from napari_gr2r.engine.training.losses import correlate_yx, pinned_noise, rademacher

    overrides = {} if steps is None else {"steps": steps}
    trainer, raw, gt = trainer_for(config, capture, overrides, preset)
    for _ in trainer.iter_fit():
        pass
    model = trainer.model
    net = model.net.eval()
    norm, level = model.normalization, model.noise_level
    pad = int(min(net.receptive_radius, min(raw.shape) - 1))
    image = np.pad(norm.apply(raw[None].astype(np.float32))[0], pad, mode="reflect")
    y = torch.from_numpy(np.ascontiguousarray(image))[None, None]

    def score(out: torch.Tensor) -> float:
        crop = out[0, :, pad:pad + raw.shape[0], pad:pad + raw.shape[1]].numpy()
        return round(psnr(gt, norm.invert(crop)[0], RANGE), 3)

    row: dict = dict(config=config, capture=capture, preset=preset, best_step=model.best_step,
                     correlated=level.kernel is not None)
    # the engine's own single pass (tiled): ``plain`` below should reproduce it
    row["engine"] = round(psnr(gt, engine.denoise(model, raw, axes="YX", device="cpu"), RANGE), 3)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        fy = net(y)
        row["plain"] = score(fy)
        for share in (1.0, 0.5):
            for kind in ("res", "gauss"):
                acc = torch.zeros_like(fy)
                for k in range(1, SAMPLES[-1] + 1):
                    if kind == "res":
                        n = pinned_noise(y - fy, rademacher(y.shape, g), fy, level)
                    else:
                        z = torch.randn(y.shape, generator=g)
                        if level.kernel is not None:
                            z = correlate_yx(z, level.kernel)
                        n = z * level.variance(fy).clamp(min=0).sqrt()
                    acc += net(y + share ** 0.5 * n)
                    if k in SAMPLES:
                        row[f"{kind}_s{share}_k{k}"] = score(acc / k)
                row[f"blend_{kind}_s{share}"] = score(0.5 * (acc / SAMPLES[-1] + fy))
    return row


def summary(rows: list[dict]) -> str:
    """A markdown table: each variant's difference to ``plain`` over the captures (a capture
    whose raw image repeats another's counted once)."""
    keep = distinct_captures((r["config"], r["capture"]) for r in rows)
    rows = [r for r in rows if (r["config"], r["capture"]) in keep]
    keys = [k for k in rows[0] if k.startswith(("res_", "gauss_", "blend_"))]
    lines = ["| inference | mean vs plain (dB) | higher on | lowest | highest |",
             "| --- | --- | --- | --- | --- |"]
    for key in keys:
        d = np.array([r[key] - r["plain"] for r in rows])
        lines.append(f"| `{key}` | {d.mean():+.3f} | {int((d > 0).sum())} of {len(d)} | "
                     f"{d.min():+.2f} | {d.max():+.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mc_inference",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--captures", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--steps", type=int, default=None, help="override the preset's steps")
    parser.add_argument("--log", type=Path)
    parser.add_argument("--tables", type=Path, metavar="LOG",
                        help="train nothing: the summary of the runs in this log")
    args = parser.parse_args(argv)
    if args.tables:
        print(summary([json.loads(line) for line in args.tables.read_text().splitlines()
                       if line.strip()]))
        return 0
    rows = []
    for config in args.configs:
        for capture in args.captures:
            row = measure(config, capture, args.preset, args.steps)
            rows.append(row)
            log_row(row, args.log)
    print(summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
