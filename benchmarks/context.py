"""Neighbouring planes as context (``TrainConfig.context``): PSNR, time per step, memory.

::

    python -m benchmarks.context --out benchmarks/results          # the default run
    python -m benchmarks.context --smoke --out /tmp/context          # seconds
    python -m benchmarks.context --datasets moving --contexts 0 3 --steps 1200 \
        --name context-long --out benchmarks/results                    # a longer budget

Every run trains the ``fast`` preset's network (width 16, depth 2, 48 x 48 patches, 8 per step)
for the same number of steps (``--steps``) with context 0, 1, 2 and 3, one torch thread, each
in a fresh process (so that its peak memory is its own), and scores the result against the
clean image. The data:

* ``moving``: a time-lapse with moving cells. Each frame is the brighter of two crops of the
  bundled ``nuclei2d`` reference that drift in different directions (2 px per frame to the
  right, and 1 px down and 1 px left per frame), with independent Poisson-Gaussian noise per
  frame (peak 20 photons, read noise 2).
* ``fmd-<config>``: the four real single captures of one FMD field (``/work/shared/data/fmd-bpae``
  or ``--fmd``), a time-lapse without motion, against the 50-frame ground truth (centre crop).
* ``z-thin`` / ``z-thick``: the bundled ``nuclei3d`` reference with Poisson-Gaussian noise, all
  its slices (thin sections: neighbouring slices share most structures) or every fourth (thick
  sections: less shared), denoised by a 2D network with context along Z.
* ``unrelated``: eight unrelated crops of ``nuclei2d`` stacked as a time-lapse: no redundancy
  between planes, where context can only cost.

``--contexts auto`` trains with ``context="auto"`` (the table shows the planes it chose). Its
steps were set on the data above and on ``--more-dev``:

* ``fmd-<config>`` for the eight configurations other than ``TwoPhoton_BPAE_G``;
* ``drift-<config>``: the 50-frame ground truth of an FMD configuration drifting 3 px right and
  1 px down per frame over 8 frames, with Poisson-Gaussian noise (Confocal R, WideField B);
* ``stains``: eight of the FMD ground truths (microscopes x stains) as a time-lapse, with
  Poisson-Gaussian noise: planes that share little.

``--held-out`` is the data scored once, after the steps were fixed:

* ``drift-<config>-<dx>``: as ``drift`` with ``dx`` px per frame to the right (1 px down) for
  TwoPhoton B (1 px), Confocal G (2 px), TwoPhoton R (3 px) and WideField R (5 px);
* ``z-mid``: every second slice of ``nuclei3d``;
* ``crops``: eight crops of the bundled ``fmd_confocal`` reference, each rotated differently,
  with Poisson-Gaussian noise.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import NOISES, load_clean, log, machine, markdown_table, psnr, versions

FMD = Path("/work/shared/data/fmd-bpae")
FMD_CONFIGS = ("TwoPhoton_BPAE_G",)
ALL_FMD = tuple(f"{m}_BPAE_{s}" for m in ("Confocal", "TwoPhoton", "WideField")
                for s in ("B", "G", "R"))
CONTEXTS = (0, 1, 2, 3)
STEPS = 300


def moving_timelapse(frames: int = 10, size: int = 96, seed: int = 0,
                     ) -> tuple[np.ndarray, np.ndarray, float]:
    """``(noisy, clean, data_range)``: two populations of nuclei drifting apart."""
    from napari_gr2r.sample_data import load_sample

    _, reference, _ = load_sample("nuclei2d")
    ref = reference.astype(np.float32)
    ref = (ref - ref.min()) / (ref.max() - ref.min())
    clean = []
    for t in range(frames):
        a = ref[10:10 + size, 10 + 2 * t:10 + 2 * t + size]
        b = ref[130 + t:130 + t + size, 150 - t:150 - t + size]
        clean.append(np.maximum(a, b))
    return _noisy(np.stack(clean), seed)


def _noisy(clean01: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    noise = NOISES["poisson-gaussian"]
    noisy, clean = noise.apply(clean01, seed=seed)  # independent noise in every plane
    return noisy, clean, noise.scale


def unrelated(size: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    from napari_gr2r.sample_data import load_sample

    _, reference, _ = load_sample("nuclei2d")
    ref = reference.astype(np.float32)
    ref = (ref - ref.min()) / (ref.max() - ref.min())
    starts = [(y, x) for y in (0, 80, 160) for x in (0, 80, 160)][:8]
    crops = [np.rot90(ref[y:y + size, x:x + size], k) for k, (y, x) in enumerate(starts)]
    return _noisy(np.stack(crops), seed)


def z_stack(every: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    clean, _ = load_clean("nuclei3d")
    return _noisy(clean[::every], seed)


def fmd(config: str, folder: Path, size: int = 128) -> tuple[np.ndarray, np.ndarray, float]:
    from skimage.io import imread

    raw = np.stack([imread(folder / "raw" / f"{config}_{k}.png") for k in range(1, 5)])
    gt = imread(folder / "gt" / f"{config}_1.png")
    ny, nx = gt.shape
    y0, x0 = (ny - size) // 2, (nx - size) // 2
    crop = (..., slice(y0, y0 + size), slice(x0, x0 + size))
    clean = np.broadcast_to(gt[crop], raw[crop].shape)
    return raw[crop].astype(np.float32), clean.astype(np.float32), 255.0


def _fmd_gt01(config: str, folder: Path, size: int) -> np.ndarray:
    from skimage.io import imread

    gt = imread(folder / "gt" / f"{config}_1.png").astype(np.float32)
    gt = (gt - gt.min()) / (gt.max() - gt.min())
    y0, x0 = (gt.shape[0] - size) // 2, (gt.shape[1] - size) // 2
    return gt[y0:, x0:]


def drift(config: str, folder: Path, frames: int = 8, size: int = 96, dx: int = 3,
          ) -> tuple[np.ndarray, np.ndarray, float]:
    gt = _fmd_gt01(config, folder, size + dx * frames)
    return _noisy(np.stack([gt[t:t + size, dx * t:dx * t + size] for t in range(frames)]), 1)


def stains(folder: Path, size: int = 96) -> tuple[np.ndarray, np.ndarray, float]:
    planes = [_fmd_gt01(c, folder, size)[:size, :size] for c in ALL_FMD[:8]]
    return _noisy(np.stack(planes), 2)


def crops(size: int = 96) -> tuple[np.ndarray, np.ndarray, float]:
    from napari_gr2r.sample_data import load_sample

    _, reference, _ = load_sample("fmd_confocal")
    ref = reference.astype(np.float32)
    ref = (ref - ref.min()) / (ref.max() - ref.min())
    ny, nx = ref.shape[-2:]
    starts = [(y, x) for y in np.linspace(0, ny - size, 3).astype(int)
              for x in np.linspace(0, nx - size, 3).astype(int)][:8]
    planes = [np.rot90(ref[..., y:y + size, x:x + size].reshape(size, size), k)
              for k, (y, x) in enumerate(starts)]
    return _noisy(np.stack(planes), 3)


def held_out(args: argparse.Namespace) -> dict[str, tuple[np.ndarray, np.ndarray, float, str]]:
    out: dict[str, tuple[np.ndarray, np.ndarray, float, str]] = {}
    for config, dx in (("TwoPhoton_BPAE_B", 1), ("Confocal_BPAE_G", 2),
                       ("TwoPhoton_BPAE_R", 3), ("WideField_BPAE_R", 5)):
        out[f"drift-{config}-{dx}"] = (*drift(config, args.fmd, dx=dx), "TYX")
    out["z-mid"] = (*z_stack(2), "ZYX")
    out["crops"] = (*crops(), "TYX")
    return {k: v for k, v in out.items() if not args.datasets or k in args.datasets}


def more_dev(args: argparse.Namespace) -> dict[str, tuple[np.ndarray, np.ndarray, float, str]]:
    out: dict[str, tuple[np.ndarray, np.ndarray, float, str]] = {}
    for config in ALL_FMD:
        if config not in FMD_CONFIGS:
            out[f"fmd-{config}"] = (*fmd(config, args.fmd), "TYX")
    for config in ("Confocal_BPAE_R", "WideField_BPAE_B"):
        out[f"drift-{config}"] = (*drift(config, args.fmd), "TYX")
    out["stains"] = (*stains(args.fmd), "TYX")
    return {k: v for k, v in out.items() if not args.datasets or k in args.datasets}


def datasets(args: argparse.Namespace) -> dict[str, tuple[np.ndarray, np.ndarray, float, str]]:
    out: dict[str, tuple[np.ndarray, np.ndarray, float, str]] = {}
    if args.held_out:
        return held_out(args)
    if args.more_dev:
        return more_dev(args)
    if args.smoke:
        noisy, clean, rng = moving_timelapse(frames=4, size=48)
        return {"moving": (noisy, clean, rng, "TYX")}
    out["moving"] = (*moving_timelapse(), "TYX")
    for config in FMD_CONFIGS:
        if (args.fmd / "raw" / f"{config}_1.png").is_file():
            out[f"fmd-{config}"] = (*fmd(config, args.fmd), "TYX")
        else:
            log(f"skipping fmd-{config}: no captures under {args.fmd}")
    out["z-thin"] = (*z_stack(1), "ZYX")
    out["z-thick"] = (*z_stack(4), "ZYX")
    out["unrelated"] = (*unrelated(), "TYX")
    return {k: v for k, v in out.items() if not args.datasets or k in args.datasets}


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_one(task: dict[str, Any]) -> dict[str, Any]:
    """One training and denoising, in its own process."""
    import torch

    torch.set_num_threads(1)
    from napari_gr2r.engine import TrainConfig, Trainer, denoise
    from napari_gr2r.engine.training.events import TrainingFinished

    noisy, clean, data_range = task["noisy"], task["clean"], task["range"]
    before = _rss_mib()
    cfg = TrainConfig.from_preset("fast", steps=task["steps"], context=task["context"],
                                  seed=task["seed"])
    trainer = Trainer(noisy, task["axes"], cfg, device="cpu")
    elapsed = float("nan")
    for event in trainer.iter_fit():
        if isinstance(event, TrainingFinished):
            elapsed = event.elapsed_s
    t0 = time.perf_counter()
    out = denoise(trainer.model, noisy, device="cpu")
    denoise_s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(dataset=task["dataset"], context=task["context"], seed=task["seed"],
                chosen=int(trainer.model.config.context),
                psnr=psnr(clean, out, data_range), noisy_psnr=psnr(clean, noisy, data_range),
                step_ms=1000 * elapsed / task["steps"], denoise_s=denoise_s, peak_mib=peak,
                growth_mib=peak - before, parameters=sum(p.numel() for p in
                                                         trainer.model.net.parameters()))


def report(records: list[dict[str, Any]], command: str, info: dict[str, Any]) -> str:
    by = {(r["dataset"], r["context"]): r for r in records}
    names = list(dict.fromkeys(r["dataset"] for r in records))
    contexts = list(dict.fromkeys(r["context"] for r in records))
    rows = []
    for name in names:
        base = by.get((name, 0))
        for k in contexts:
            r = by.get((name, k))
            if r is None:
                continue
            gain = r["psnr"] - base["psnr"] if base is not None else float("nan")
            label = f"auto ({r['chosen']})" if k == "auto" else k
            rows.append([name, label, f"{r['noisy_psnr']:.2f}", f"{r['psnr']:.2f}",
                         f"{gain:+.2f}", f"{r['step_ms']:.0f}", f"{r['denoise_s']:.2f}",
                         f"{r['peak_mib']:.0f}", f"{r['growth_mib']:.0f}", r["parameters"]])
    table = markdown_table(["data", "context", "noisy PSNR", "PSNR", "vs context 0",
                            "ms / step", "denoise s", "peak RSS MiB", "growth MiB",
                            "parameters"], rows)
    return (f"# Neighbouring planes as context\n\nCommand: `{command}`\n\n"
            f"Machine: {info['machine']}; versions: {info['versions']}; "
            f"{info['steps']} steps of the `fast` preset's network, seed {info['seed']}, "
            f"one torch thread, wall {info['wall_s']:.0f} s.\n\n{table}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--contexts", type=lambda t: t if t == "auto" else int(t), nargs="+",
                        default=list(CONTEXTS))
    parser.add_argument("--more-dev", action="store_true",
                        help="more data that set context='auto''s steps (docstring)")
    parser.add_argument("--held-out", action="store_true",
                        help="the data that did not serve to set context='auto' (docstring)")
    parser.add_argument("--datasets", nargs="+")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fmd", type=Path, default=FMD)
    parser.add_argument("--smoke", action="store_true", help="a few steps on a tiny movie")
    parser.add_argument("--name", default="context", help="OUT/NAME.md and OUT/NAME.json")
    args = parser.parse_args(argv)
    steps = 5 if args.smoke else args.steps
    t0 = time.perf_counter()
    records = []
    ctx = mp.get_context("spawn")
    for name, (noisy, clean, data_range, axes) in datasets(args).items():
        for k in args.contexts:
            task = dict(dataset=name, context=k, seed=args.seed, steps=steps, noisy=noisy,
                        clean=clean, range=data_range, axes=axes)
            with ctx.Pool(1) as pool:  # a fresh process per run: its own peak memory
                record = pool.apply(run_one, (task,))
            log(f"{name} context {k}: {record['psnr']:.2f} dB, {record['step_ms']:.0f} ms/step")
            records.append(record)
    info = dict(machine=machine(), versions=versions(), steps=steps, seed=args.seed,
                wall_s=time.perf_counter() - t0)
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.context " + " ".join(argv if argv is not None
                                                         else sys.argv[1:])
    (args.out / f"{args.name}.json").write_text(json.dumps(dict(info, records=records),
                                                           indent=1))
    text = report(records, command.strip(), info)
    (args.out / f"{args.name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
