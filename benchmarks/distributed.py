"""Training on several processes and at lower precision, on the CPU: wall time and PSNR.

::

    python -m benchmarks.distributed --out benchmarks/results          # a few minutes
    python -m benchmarks.distributed --steps 20 --size 128 --out /tmp/d  # seconds

Side by side, each run in its own process(es), one torch thread per process, the ``fast``
network on a crop of the bundled nuclei with Gaussian noise (SD 25 of 0..200):

- 1 process x ``--steps`` steps (the reference);
- 2 processes (``torchrun``, gloo) x ``--steps`` steps: twice the patches; the wall-time ratio
  to the reference says how well the second process is used; with the preset's learning rate
  (``TrainConfig.lr_scaling="none"``, the default), and once more with it scaled by sqrt(2)
  (``"sqrt"``);
- 1 process x ``2 * --steps`` steps: as many patches as the 2-process run, in one process (the
  PSNR the 2-process run should reach);
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
            "patches": args.steps * config.batch_size * trainer.world.size,
            "train_s": round(seconds, 2), "noisy_psnr": round(_psnr(noisy, clean), 2),
            "psnr": round(_psnr(denoised, clean), 2)}))
    trainer.world.leave()


def _run(name: str, steps: int, size: int, out: Path, processes: int = 1,
         precision: str = "fp32", lr_scaling: str = "none", seed: int = 0) -> dict[str, Any]:
    result = out / f"distributed-{name}.json"
    command = ["-m", "benchmarks.distributed", "--worker", "--steps", str(steps), "--size",
               str(size), "--precision", precision, "--lr-scaling", lr_scaling, "--seed",
               str(seed), "--result", str(result)]
    if processes > 1:
        command = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                   str(processes), *command]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    log(f"{name}: {processes} process(es), {steps} steps, {precision}, lr {lr_scaling}")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *command], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record = json.loads(result.read_text())
    record.update(name=name, wall_s=round(time.perf_counter() - t0, 2))
    result.unlink()
    log(f"  {record}")
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--size", type=int, default=256, help="crop side in pixels")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--lr", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help="training seed of every run")
    parser.add_argument("--lr-scaling", default="none", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    seed = {"seed": args.seed}
    one = _run("1x", args.steps, args.size, out, **seed)
    two = _run("2x", args.steps, args.size, out, processes=2, **seed)
    scaled = _run("2x-lr-sqrt", args.steps, args.size, out, processes=2, lr_scaling="sqrt",
                  **seed)
    same = _run("1x-double", 2 * args.steps, args.size, out, **seed)
    bf16 = _run("1x-bf16", args.steps, args.size, out, precision="bf16", **seed)
    runs = [one, two, scaled, same, bf16]
    load = f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, on " \
        f"{os.cpu_count()} cores"
    command = f"python -m benchmarks.distributed --steps {args.steps} --size {args.size}" + \
        (f" --seed {args.seed}" if args.seed else "")
    (out / "distributed.json").write_text(json.dumps(
        {"command": command, "machine": machine(), "versions": versions(), "runs": runs},
        indent=1))
    table = markdown_table(
        ["run", "processes", "backend", "precision", "lr scaling", "steps", "patches",
         "training (s)", "process wall (s)", "PSNR (dB)"],
        [[r["name"], r["processes"], r["backend"], r["precision"], r["lr_scaling"], r["steps"],
          r["patches"], r["train_s"], r["wall_s"], r["psnr"]] for r in runs])
    lines = [
        "# Training on several processes and at bf16 (CPU)", "",
        f"Command: `{command}` (one torch thread per process; the `fast` network on a "
        f"{args.size}² crop of the bundled nuclei, Gaussian noise SD {NOISE_SD:g} of 0..200, "
        f"noisy PSNR {one['noisy_psnr']:.2f} dB). The machine is shared with other jobs "
        f"({load}), so times vary from run to run.", "", table, "",
        f"- 2 processes against 1, the same steps (twice the patches): "
        f"{two['train_s'] / one['train_s']:.2f}x the training time; PSNR "
        f"{two['psnr'] - same['psnr']:+.2f} dB against one process trained on as many patches "
        f"({2 * args.steps} steps), {two['psnr'] - one['psnr']:+.2f} dB against the 1-process "
        "run of the same steps.",
        f"- The same 2 processes with the learning rate scaled by sqrt(2) (lr_scaling='sqrt'):"
        f" PSNR {scaled['psnr'] - same['psnr']:+.2f} dB against the 1-process run on as many "
        "patches.",
        f"- bf16 against fp32 (1 process, the same steps): {bf16['psnr'] - one['psnr']:+.2f} "
        f"dB, {one['train_s'] / bf16['train_s']:.2f}x the speed.",
        "- GPU figures (steps per second, fraction of peak, fp32 / bf16 / compiled) are not "
        "measured: no GPU was available.", ""]
    (out / "distributed.md").write_text("\n".join(lines))
    log(f"wrote {out / 'distributed.md'}")


if __name__ == "__main__":
    main()
