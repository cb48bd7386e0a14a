"""Training on several processes and at lower precision, on the CPU: wall time and PSNR.

::

    python -m benchmarks.distributed --out benchmarks/results          # a few minutes
    python -m benchmarks.distributed --steps 20 --size 128 --seeds 0 --out /tmp/d

At each training seed, side by side, each run in its own process(es), one torch thread per
process, the ``fast``
network on a crop of the bundled nuclei with Gaussian noise (SD 25 of 0..200):

- 1 process x ``--steps`` steps (the reference);
- 2 processes (``torchrun``, gloo) x ``--steps`` steps: twice the patches; the wall-time ratio
  to the reference says how well the second process is used; with the preset's learning rate
  (``TrainConfig.lr_scaling="none"``, the default);
- 1 process x ``--steps`` steps of a batch twice the preset's: as many patches in as many
  optimiser steps as the 2-process run, which averages the gradients of two batches (the PSNR
  the 2-process run should reach);
- 1 process x ``2 * --steps`` steps: as many patches in twice the optimiser steps;
- 1 process x ``--steps`` steps at bf16 (autocast) against the fp32 reference.

Training time is the trainer's own (from its first event to its last, rank 0 for torchrun);
the PSNR is the denoised crop's against the clean one. GPU figures are not measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import log, machine, markdown_table, versions

NOISE_SD = 25.0


def _data(size: int) -> tuple[np.ndarray, np.ndarray]:
    from napari_gr2r.sample_data import load_sample

    _, clean, _ = load_sample("nuclei2d")
    clean = clean[:size, :size].astype(np.float32)
    clean = (clean - clean.min()) / (clean.max() - clean.min()) * 200
    noisy = clean + np.random.default_rng(0).normal(0, NOISE_SD, clean.shape)
    return noisy.astype(np.float32), clean


def _psnr(image: np.ndarray, clean: np.ndarray) -> float:
    return float(10 * np.log10(200.0**2 / np.mean((image.astype(np.float64) - clean) ** 2)))


def worker(args: argparse.Namespace) -> None:
    """One training run (one rank of it under torchrun); rank 0 writes ``--result``."""
    import torch

    from napari_gr2r import engine

    torch.set_num_threads(1)
    noisy, clean = _data(args.size)
    overrides: dict[str, Any] = {"lr_scaling": args.lr_scaling}
    if args.batch > 1:  # one process computing the batch of `batch` processes
        overrides["batch_size"] = args.batch * engine.TrainConfig.from_preset("fast").batch_size
    if args.lr:
        overrides["lr"] = args.lr
    config = engine.TrainConfig.from_preset("fast", steps=args.steps, precision=args.precision,
                                            seed=args.seed, **overrides)
    trainer = engine.Trainer(noisy, "YX", config, device="cpu")
    t0 = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - t0
    if trainer.world.is_main:
        denoised = engine.denoise(trainer.model, noisy, "YX", device="cpu")
        Path(args.result).write_text(json.dumps({
            "processes": trainer.world.size, "backend": trainer.world.backend or "-",
            "precision": trainer.precision, "steps": args.steps,
            "lr_scaling": args.lr_scaling if trainer.world.active else "-",
            "batch": config.batch_size * trainer.world.size,
            "patches": args.steps * config.batch_size * trainer.world.size,
            "train_s": round(seconds, 2), "noisy_psnr": round(_psnr(noisy, clean), 2),
            "psnr": round(_psnr(denoised, clean), 2)}))
    trainer.world.leave()


def _run(name: str, steps: int, size: int, out: Path, processes: int = 1,
         precision: str = "fp32", lr_scaling: str = "none", seed: int = 0, batch: int = 1
         ) -> dict[str, Any]:
    result = out / f"distributed-{name}.json"
    command = ["-m", "benchmarks.distributed", "--worker", "--steps", str(steps), "--size",
               str(size), "--precision", precision, "--lr-scaling", lr_scaling, "--seed",
               str(seed), "--batch", str(batch), "--result", str(result)]
    if processes > 1:
        command = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                   str(processes), *command]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    log(f"{name}: {processes} process(es), {steps} steps, batch x{batch}, {precision}")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *command], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record = json.loads(result.read_text())
    record.update(name=name, wall_s=round(time.perf_counter() - t0, 2))
    result.unlink()
    log(f"  {record}")
    return record


def _seed_rows(args: argparse.Namespace, out: Path, seed: int) -> dict[str, dict[str, Any]]:
    """The runs compared at one training seed, one after another (pair by pair)."""
    one = _run(f"1x-s{seed}", args.steps, args.size, out, seed=seed)
    two = _run(f"2x-s{seed}", args.steps, args.size, out, processes=2, seed=seed)
    wide = _run(f"1x-batch2-s{seed}", args.steps, args.size, out, batch=2, seed=seed)
    double = _run(f"1x-double-s{seed}", 2 * args.steps, args.size, out, seed=seed)
    return {"1x": one, "2x": two, "1x-batch2": wide, "1x-double": double}


def _summary(per_seed: list[dict[str, dict[str, Any]]], bf16: dict[str, Any],
             one0: dict[str, Any], steps: int) -> list[str]:
    def mean(values: list[float]) -> float:
        return float(np.mean(values))

    ratio = [s["2x"]["train_s"] / s["1x"]["train_s"] for s in per_seed]
    same_batch = [s["2x"]["psnr"] - s["1x-batch2"]["psnr"] for s in per_seed]
    double = [s["2x"]["psnr"] - s["1x-double"]["psnr"] for s in per_seed]
    one = ", ".join(f"{v:+.2f}" for v in same_batch)
    two = ", ".join(f"{v:+.2f}" for v in double)
    return [
        f"- 2 processes against 1, the same steps (twice the patches): {mean(ratio):.2f}x the "
        f"training time (per seed {', '.join(f'{r:.2f}' for r in ratio)}).",
        f"- PSNR of the 2-process model against one process trained on as many patches in as "
        f"many optimiser steps (a batch twice as large, which is what the 2 processes compute): "
        f"{mean(same_batch):+.2f} dB on average ({one}).",
        f"- Against one process trained on as many patches in twice the optimiser steps "
        f"({2 * steps} steps of the preset's batch): {mean(double):+.2f} dB ({two}); the 2-process "
        "run makes half as many optimiser steps.",
        f"- bf16 against fp32 (1 process, the same steps, seed 0): "
        f"{bf16['psnr'] - one0['psnr']:+.2f} dB, {one0['train_s'] / bf16['train_s']:.2f}x the "
        "speed.",
        "- GPU figures (steps per second, fraction of peak, fp32 / bf16 / compiled) are not "
        "measured: no GPU was available.",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--size", type=int, default=256, help="crop side in pixels")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="training seeds; every comparison is made at each")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--lr", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--lr-scaling", default="none", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    per_seed = [_seed_rows(args, out, seed) for seed in args.seeds]
    bf16 = _run("1x-bf16-s0", args.steps, args.size, out, precision="bf16", seed=args.seeds[0])
    runs = [r for rows in per_seed for r in rows.values()] + [bf16]
    load = f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, on " \
        f"{os.cpu_count()} cores"
    command = f"python -m benchmarks.distributed --steps {args.steps} --size {args.size} " \
        f"--seeds {' '.join(map(str, args.seeds))}"
    (out / "distributed.json").write_text(json.dumps(
        {"command": command, "machine": machine(), "versions": versions(), "runs": runs},
        indent=1))
    table = markdown_table(
        ["run", "processes", "backend", "precision", "steps", "batch", "patches",
         "training (s)", "process wall (s)", "PSNR (dB)"],
        [[r["name"], r["processes"], r["backend"], r["precision"], r["steps"], r["batch"],
          r["patches"], r["train_s"], r["wall_s"], r["psnr"]] for r in runs])
    lines = [
        "# Training on several processes and at bf16 (CPU)", "",
        f"Command: `{command}` (one torch thread per process; the `fast` network on a "
        f"{args.size}² crop of the bundled nuclei, Gaussian noise SD {NOISE_SD:g} of 0..200, "
        f"noisy PSNR {per_seed[0]['1x']['noisy_psnr']:.2f} dB; the preset's learning rate, "
        f"`lr_scaling='none'`). {load}.", "", table, "",
        *_summary(per_seed, bf16, per_seed[0]["1x"], args.steps), "",
        "Scaling the learning rate with the number of processes: see "
        "[distributed-lr.md](distributed-lr.md).", ""]
    (out / "distributed.md").write_text("\n".join(lines))
    log(f"wrote {out / 'distributed.md'}")


if __name__ == "__main__":
    main()
