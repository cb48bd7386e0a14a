"""How GR2R's generated-noise level (``TrainConfig.noise_scale``) moves the ``fast`` preset on
images of known noise.

The development set's clean images of :mod:`benchmarks.noise_fit` (binned 2x2, a centre crop,
scaled to 0..1000) with Gaussian noise (sd 5 and 10 % of the range) and Poisson-Gaussian noise
(30 photons at the peak, read noise 2 photons); the ``fast`` preset trained on each noisy image
with each ``--scales`` value (seed 0, one torch thread), PSNR (range 1000) against the clean
image. A line of JSON per run goes to ``--log``.

    python -m benchmarks.noise_scale --scales 1.0 0.8 --log OUT.jsonl
    python -m benchmarks.noise_scale --variants "" gamma=0.0,steps=620 --log OUT.jsonl

``--variants`` measures any other settings of the preset the same way; ``--noises`` replaces the
three noises (``KIND:LEVEL``, the kinds and levels of :mod:`benchmarks.noise_fit`, e.g.
``correlated:0.05``: Gaussian noise filtered along X).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from .common import log_row
from .noise_fit import FMD, LEVELS, add_noise, clean_images
from .realnoise_levers import _value

IMAGES = ["camera", "coins", "cell", "fmd_Confocal_BPAE_G", "fmd_TwoPhoton_BPAE_B"]
NOISES = [("gaussian", 0.05), ("gaussian", 0.10), ("poisson-gaussian", 30)]


def _settings(text: str) -> dict:
    """``"gamma=0.0,steps=620"`` -> ``{"gamma": 0.0, "steps": 620}`` (``""``: the preset); a
    value that is no Python literal stays text (``generated_noise=model``)."""
    return {k: _value(v) for k, v in (item.split("=", 1) for item in text.split(",") if item)}


def _noise(text: str) -> tuple[str, float]:
    """``"correlated:0.05"`` -> ``("correlated", 0.05)``."""
    kind, _, level = text.partition(":")
    if kind not in LEVELS or not level:
        raise SystemExit(f"--noises takes KIND:LEVEL with KIND one of {', '.join(LEVELS)}")
    return kind, float(level)


def compare(logs: list[Path], baseline: str) -> str:
    """A markdown table of every variant in ``logs`` against the runs of variant ``baseline``
    on the same image, noise and level (PSNR dB)."""
    rows = [json.loads(line) for path in logs for line in path.read_text().splitlines()
            if line.strip()]
    key = lambda r: (r["image"], r["noise"], r["level"])  # noqa: E731
    base = {key(r): r["psnr"] for r in rows if r.get("variant") == baseline}
    if not base:
        raise SystemExit(f"no runs of variant {baseline!r} in {', '.join(map(str, logs))}")
    lines = ["| variant | cases | mean vs baseline (dB) | median | higher on | lowest (case) | "
             "highest |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for variant in dict.fromkeys(r.get("variant") for r in rows if r.get("variant") != baseline):
        pairs = [(r, base[key(r)]) for r in rows if r.get("variant") == variant and key(r) in base]
        if not pairs:
            continue
        d = np.array([r["psnr"] - b for r, b in pairs])
        low = pairs[int(d.argmin())][0]
        lines.append(f"| `{variant}` | {len(d)} | {d.mean():+.3f} | {np.median(d):+.2f} | "
                     f"{int((d > 0).sum())} | {d.min():+.2f} ({low['image']}, {low['noise']} "
                     f"{low['level']:g}) | {d.max():+.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import torch

    from napari_gr2r import engine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", type=float, default=[1.0, 0.8])
    parser.add_argument("--variants", nargs="+", default=None, metavar="FIELD=VALUE,...",
                        help="instead of --scales: TrainConfig settings per run, comma-separated "
                             "(\"\" for the preset as it is), e.g. \"\" gamma=0.0,steps=620")
    parser.add_argument("--noises", nargs="+", default=None, metavar="KIND:LEVEL",
                        help="instead of the three default noises, e.g. correlated:0.05")
    parser.add_argument("--images", nargs="+", default=IMAGES)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--log", type=Path, help="a line of JSON per run goes here")
    parser.add_argument("--compare", nargs="+", type=Path, metavar="LOG",
                        help="train nothing: print every variant in these logs against "
                             "--baseline")
    parser.add_argument("--baseline", default="preset",
                        help="the variant --compare measures against")
    args = parser.parse_args(argv)
    if args.compare:
        print(compare(args.compare, args.baseline))
        return
    if args.log is None:
        parser.error("--log is required to train")
    noises = NOISES if args.noises is None else [_noise(text) for text in args.noises]
    torch.set_num_threads(1)
    images = clean_images(args.size, FMD)
    for name in args.images:
        clean, own = images[name]
        for kind, level in noises:
            rng = np.random.default_rng([0, list(LEVELS).index(kind), int(level * 1000)])
            noisy, _ = add_noise(clean, kind, level, rng)
            reference = clean + (100 * 1000 / level if kind == "poisson-gaussian" else 0)
            runs = ([({"noise_scale": scale}, {"scale": scale}) for scale in args.scales]
                    if args.variants is None else
                    [(_settings(v), {"variant": v or "preset"}) for v in args.variants])
            for settings, tag in runs:
                config = engine.TrainConfig.from_preset("fast", **{"seed": 0, **settings})
                model = engine.train(noisy.astype(np.float32), "YX", config, device="cpu")
                out = engine.denoise(model, noisy.astype(np.float32), "YX", device="cpu")
                mse = float(np.mean((out.astype(np.float64) - reference) ** 2)) - own
                row = {"image": name, "noise": kind, "level": level, **tag,
                       "psnr": round(10 * math.log10(1000.0**2 / mse), 3)}
                log_row(row, args.log)


if __name__ == "__main__":
    main()
