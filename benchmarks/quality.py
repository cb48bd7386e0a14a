"""Denoising quality: PSNR and SSIM of every method on every test image and noise model.

::

    python -m benchmarks.quality --out benchmarks/results          # the full run (tens of minutes)
    python -m benchmarks.quality --smoke --out /tmp/quality-smoke   # seconds

Every network method trains the engine's U-Net of the ``fast`` preset with the same budget
(steps, batch, patch, optimiser, schedule, seed) on the noisy image alone (``n2c`` is the
supervised ceiling: it also gets the clean image). CAREamics' N2V runs with its own default
network for the same wall time as ``gr2r`` on the same image (its per-epoch overhead makes a
step budget meaningless on small images). BM3D is given the true noise. No method sees the
clean image except ``n2c`` and the scoring. Finished runs are stored under ``OUT/runs`` and
reused, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from napari_gr2r import engine

from . import baselines
from .common import (
    NOISES,
    Store,
    Timer,
    load_clean,
    log,
    machine,
    markdown_table,
    psnr,
    ssim,
    versions,
)

NETWORK_METHODS = ("gr2r", "gr2r-paper", "n2c", "r2r", "n2n")
ALL_METHODS = ("noisy", *NETWORK_METHODS, "n2v", "bm3d")
LABELS = {
    "noisy": "noisy input",
    "gr2r": "gr2r (default)",
    "gr2r-paper": "gr2r-paper",
    "n2c": "n2c (supervised)",
    "r2r": "r2r (true noise)",
    "n2n": "Neighbor2Neighbor",
    "n2v": "N2V (CAREamics)",
    "bm3d": "BM3D (true noise)",
}
DEFAULT_IMAGES = ("nuclei2d", "camera")
DEFAULT_NOISES = ("gaussian", "poisson-gaussian", "correlated")


class Settings:
    """The budget of one suite run."""

    def __init__(self, smoke: bool, steps: int | None, long_steps: int | None,
                 long_every: int | None, crop: int | None) -> None:
        self.smoke = smoke
        default_steps = engine.TrainConfig.from_preset("fast").steps
        self.steps = steps or (4 if smoke else default_steps)
        self.long_steps = long_steps or (6 if smoke else 10 * default_steps)
        self.long_every = long_every or (2 if smoke else 50)
        self.curve_every = 2 if smoke else 25
        self.crop = crop or (64 if smoke else 128)
        if smoke:
            self.overrides: dict[str, Any] = dict(width=8, patch_size=16, batch_size=2,
                                                  val_every=2, event_every=1)
        else:
            self.overrides = {}

    def config(self, method: str, steps: int, **extra: Any) -> engine.TrainConfig:
        values = dict(method=method, steps=steps, seed=0, net_dims="2d", **self.overrides)
        values.update(extra)
        return engine.TrainConfig.from_preset("fast", **values)

    def describe(self) -> dict[str, Any]:
        cfg = self.config("gr2r", self.steps)
        return dict(steps=self.steps, long_steps=self.long_steps, crop=self.crop,
                    width=cfg.width, depth=cfg.depth, patch=cfg.patch_size,
                    batch=cfg.batch_size, lr=cfg.lr, smoke=self.smoke)


def case_seed(image: str, noise: str) -> int:
    return zlib.crc32(f"{image}/{noise}".encode())


def make_case(image: str, noise_name: str, crop: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``(noisy, clean, axes)`` of one image and noise model, with a fixed seed."""
    clean01, axes = load_clean(image, crop)
    noisy, clean = NOISES[noise_name].apply(clean01, case_seed(image, noise_name))
    return noisy, clean, axes


def r2r_noise(noise_name: str) -> dict[str, Any]:
    """The true noise model as ``r2r`` takes it (correlated noise: its marginal σ, as white)."""
    noise = NOISES[noise_name]
    if noise.gain > 0:
        return dict(noise_model="poisson-gaussian", noise_sigma=noise.sigma,
                    noise_gain=noise.gain, noise_offset=0.0)
    return dict(noise_model="gaussian", noise_sigma=noise.sigma)


class _Watch:
    """Collects what the engine reports: collapse, best step."""

    def __init__(self) -> None:
        self.collapsed = False
        self.best_step: int | None = None

    def __call__(self, event: engine.TrainEvent) -> None:
        if isinstance(event, engine.CollapseDetected):
            self.collapsed = True
        if isinstance(event, engine.TrainingFinished):
            self.best_step = event.best_step


def run_method(method: str, noisy: np.ndarray, clean: np.ndarray, axes: str, noise_name: str,
               settings: Settings, gr2r_seconds: float | None) -> tuple[np.ndarray | None,
                                                                        dict[str, Any]]:
    """Denoise with one method; returns the estimate (None: skipped) and notes."""
    noise = NOISES[noise_name]
    notes: dict[str, Any] = {}
    if method == "noisy":
        return noisy.copy(), notes
    if method == "gr2r":
        return _run_gr2r_with_curve(noisy, clean, axes, noise, settings)
    if method in NETWORK_METHODS:
        watch = _Watch()
        if method == "n2n":
            model = baselines.train_neighbor2neighbor(noisy, axes, settings.config(
                "gr2r", settings.steps), callback=watch)
        else:
            extra = r2r_noise(noise_name) if method == "r2r" else {}
            cfg = settings.config(method, settings.steps, **extra)
            target = clean if method == "n2c" else None
            model = engine.train(noisy, axes, cfg, target=target, device="cpu", callback=watch)
        notes.update(collapsed=watch.collapsed, best_step=watch.best_step, steps=settings.steps)
        if method == "r2r" and noise.kernel is not None:
            notes["note"] = "given the marginal σ as white noise (r2r has no correlated model)"
        return engine.denoise(model, noisy, axes=axes, device="cpu"), notes
    if method == "n2v":
        if baselines.import_careamics() is None:
            return None, {"skipped": "careamics is not installed"}
        if noisy.ndim != 2:
            return None, {"skipped": "2D images only in this benchmark"}
        patch = 32 if settings.smoke else 64
        seconds = gr2r_seconds if gr2r_seconds is not None else 10.0
        baselines.seed_everything(0)
        careamist = baselines.train_n2v(noisy, steps=100_000, patch=patch,
                                        batch=settings.config("gr2r", 1).batch_size,
                                        max_seconds=seconds)
        notes.update(steps=int(careamist.trainer.global_step), wall_budget_s=round(seconds, 1),
                     patch=patch)
        return baselines.predict_n2v(careamist, noisy), notes
    if method == "bm3d":
        if not baselines.bm3d_available():
            return None, {"skipped": "bm3d is not installed"}
        return baselines.bm3d_denoise(noisy, noise), notes
    raise ValueError(f"unknown method {method!r}")


class _Tracked:
    """What :func:`train_tracking_psnr` saw: ``[step, training seconds, PSNR, residual
    energy]`` rows, the step collapse was reported at, the best step, the evaluation time."""

    def __init__(self) -> None:
        self.rows: list[list[Any]] = []
        self.collapse_step: int | None = None
        self.best_step: int | None = None
        self.eval_s = 0.0


def train_tracking_psnr(trainer: engine.Trainer, noisy: np.ndarray, clean: np.ndarray,
                        axes: str, data_range: float, every: int) -> _Tracked:
    """Train, scoring the live network against ``clean`` every ``every`` steps and at the end;
    the evaluations are timed apart (``eval_s``) and left out of the rows' seconds."""
    tracked = _Tracked()
    total = trainer.config.steps
    with Timer() as clock:
        for event in trainer.iter_fit():
            if isinstance(event, engine.TrainingProgress) and (
                    event.step % every == 0 or event.step == total):
                with Timer() as ev:
                    live = engine.denoise(trainer.model, noisy, axes=axes, device="cpu")
                    trainer.net.train()
                    value = psnr(clean, live, data_range)
                tracked.eval_s += ev.seconds
                tracked.rows.append([event.step, round(clock.elapsed - tracked.eval_s, 2), value,
                                     event.residual_energy])
            elif isinstance(event, engine.CollapseDetected):
                tracked.collapse_step = event.step
            elif isinstance(event, engine.TrainingFinished):
                tracked.best_step = event.best_step
    return tracked


def _run_gr2r_with_curve(noisy: np.ndarray, clean: np.ndarray, axes: str, noise: Any,
                         settings: Settings) -> tuple[np.ndarray, dict[str, Any]]:
    """``gr2r`` as in the table, with PSNR against training time on the side (for time to
    quality); the evaluations are left out of the run's seconds."""
    trainer = engine.Trainer(noisy, axes, settings.config("gr2r", settings.steps), device="cpu")
    tracked = train_tracking_psnr(trainer, noisy, clean, axes, noise.scale,
                                  settings.curve_every)
    notes = dict(collapsed=tracked.collapse_step is not None, best_step=tracked.best_step,
                 steps=settings.steps, curve=[row[:3] for row in tracked.rows],
                 eval_s=round(tracked.eval_s, 2))
    return engine.denoise(trainer.model, noisy, axes=axes, device="cpu"), notes


def time_to_reach(curve: list[list[float]], target: float) -> tuple[float, int] | None:
    """Training seconds and step at which a ``[step, seconds, psnr]`` curve first reaches
    ``target`` dB (None: never)."""
    for step, seconds, value in curve:
        if value >= target:
            return seconds, int(step)
    return None


def run_table(settings: Settings, images: list[str], noises: list[str], methods: list[str],
              store: Store) -> list[dict[str, Any]]:
    records = []
    for image in images:
        for noise_name in noises:
            noisy, clean, axes = make_case(image, noise_name, settings.crop)
            data_range = NOISES[noise_name].scale
            gr2r_seconds = None
            for method in methods:
                key = f"table-{image}-{noise_name}-{method}-{settings.steps}"
                record = store.get(key)
                if record is None:
                    log(f"{image} / {noise_name} / {method} ...")
                    with Timer() as timer:
                        estimate, notes = run_method(method, noisy, clean, axes, noise_name,
                                                     settings, gr2r_seconds)
                    # PSNR evaluations along the way are not part of the method's time
                    seconds = timer.seconds - notes.pop("eval_s", 0.0)
                    record = dict(image=image, noise=noise_name, method=method,
                                  seconds=round(seconds, 2), **notes)
                    if estimate is not None:
                        record.update(psnr=psnr(clean, estimate, data_range),
                                      ssim=ssim(clean, estimate, data_range))
                    store.put(key, record, estimate)
                    log(f"  -> {_short(record)}")
                if method == "gr2r":
                    gr2r_seconds = record["seconds"]
                records.append(record)
    return records


def _short(record: dict[str, Any]) -> str:
    if "psnr" in record:
        return f"PSNR {record['psnr']:.2f} dB, SSIM {record['ssim']:.3f}, {record['seconds']:.0f} s"
    return record.get("skipped", "no result")


# --------------------------------------------------------------------------------------------
# long run: PSNR of the network being trained, every few steps


def run_long(settings: Settings, image: str, noise_name: str, methods: list[str],
             store: Store) -> dict[str, Any]:
    noisy, clean, axes = make_case(image, noise_name, settings.crop)
    data_range = NOISES[noise_name].scale
    curves: dict[str, Any] = {}
    for method in methods:
        key = f"long-{image}-{noise_name}-{method}-{settings.long_steps}"
        record = store.get(key)
        if record is None:
            log(f"long run {image} / {noise_name} / {method}, {settings.long_steps} steps ...")
            if method == "n2n":
                cfg = settings.config("gr2r", settings.long_steps)
                trainer = baselines.neighbor2neighbor_trainer(noisy, axes, cfg)
            else:
                extra = r2r_noise(noise_name) if method == "r2r" else {}
                cfg = settings.config(method, settings.long_steps, **extra)
                target = clean if method == "n2c" else None
                trainer = engine.Trainer(noisy, axes, cfg, target=target, device="cpu")
            with Timer() as timer:
                tracked = train_tracking_psnr(trainer, noisy, clean, axes, data_range,
                                              settings.long_every)
            kept = engine.denoise(trainer.model, noisy, axes=axes, device="cpu")
            steps, values, energies = ([row[i] for row in tracked.rows] for i in (0, 2, 3))
            collapse_step = tracked.collapse_step
            record = dict(method=method, steps=steps, psnr=values, residual_energy=energies,
                          collapse_detected_at=collapse_step, best_step=tracked.best_step,
                          kept_psnr=psnr(clean, kept, data_range), seconds=round(timer.seconds, 1))
            store.put(key, record)
            log(f"  -> last {values[-1]:.2f} dB, max {max(values):.2f} dB, kept "
                f"{record['kept_psnr']:.2f} dB, collapse at {collapse_step}")
        curves[method] = record
    return dict(image=image, noise=noise_name, curves=curves)


# --------------------------------------------------------------------------------------------
# reports


def write_table(records: list[dict[str, Any]], methods: list[str], settings: Settings,
                out: Path, long: dict[str, Any] | None) -> str:
    by = {(r["image"], r["noise"], r["method"]): r for r in records}
    cases = list(dict.fromkeys((r["image"], r["noise"]) for r in records))
    shown = [m for m in methods if any("psnr" in by.get((i, n, m), {}) for i, n in cases)]
    header = ["image", "noise", *[LABELS[m] for m in shown]]

    def cell(i: str, n: str, m: str, what: str) -> str:
        r = by.get((i, n, m), {})
        if what not in r:
            return "–"
        return f"{r[what]:.2f}" if what == "psnr" else f"{r[what]:.3f}"

    text = ["# Denoising quality", ""]
    d = settings.describe()
    preset = engine.TrainConfig.from_preset("fast")
    budget = ("the `fast` preset's default" if settings.steps == preset.steps
              else f"the `fast` preset's default is {preset.steps}")
    text.append(
        f"Each network method trains the engine's U-Net (`fast` preset: width {d['width']}, "
        f"depth {d['depth']}, {d['patch']}² patches, batch {d['batch']}) for "
        f"**{settings.steps} steps** ({budget}) on one "
        f"{settings.crop}×{settings.crop} noisy image. N2V (CAREamics, its default network, 64² "
        "patches) gets the same wall time as `gr2r` on the same image. BM3D gets the true noise "
        "(σ; the PSD for correlated noise; the generalised Anscombe transform for "
        "Poisson-Gaussian noise). PSNR and SSIM use the clean image's range (255, or 20 photons "
        "for Poisson-Gaussian). One torch thread per process: on this CPU, shared with other "
        "jobs, that trains several times faster than two.")
    text.append("")
    text.append("## PSNR (dB)\n")
    def mean_row(metric: str, fmt: str, noise_name: str | None = None) -> list[str]:
        """Means of ``metric`` per method, over one noise or (None) over every case."""
        means = []
        for m in shown:
            vals = [by[(i, n, m)][metric] for i, n in cases
                    if noise_name in (None, n) and metric in by.get((i, n, m), {})]
            means.append(format(np.mean(vals), fmt) if vals else "–")
        return ["**mean**", noise_name or "all", *means]

    rows = [[i, n, *[cell(i, n, m, "psnr") for m in shown]] for i, n in cases]
    rows += [mean_row("psnr", ".2f", noise_name) for noise_name in dict.fromkeys(n for _, n in cases)]
    total = mean_row("psnr", ".2f")
    rows.append(total[:2] + [f"**{v}**" if v != "–" else v for v in total[2:]])
    text.append(markdown_table(header, rows))
    text.append("## SSIM\n")
    rows = [[i, n, *[cell(i, n, m, "ssim") for m in shown]] for i, n in cases]
    total = mean_row("ssim", ".3f")
    rows.append(total[:2] + [f"**{v}**" if v != "–" else v for v in total[2:]])
    text.append(markdown_table(header, rows))
    text.append("## Wall time per run (s, training and inference)\n")
    rows = [[i, n, *[f"{by[(i, n, m)]['seconds']:.0f}" if (i, n, m) in by else "–"
                     for m in shown]] for i, n in cases]
    text.append(markdown_table(header, rows))
    text += time_to_quality_section(by, cases)
    notes = []
    for r in records:
        if r.get("skipped"):
            notes.append(f"- {r['image']} / {r['noise']} / {r['method']}: skipped, {r['skipped']}")
        if r.get("collapsed"):
            notes.append(f"- {r['image']} / {r['noise']} / {r['method']}: the engine reported "
                         "collapse during training")
        if r["method"] == "n2v" and "steps" in r:
            notes.append(f"- {r['image']} / {r['noise']} / N2V: {r['steps']} CAREamics steps in "
                         f"{r['wall_budget_s']} s")
        if r.get("note"):
            notes.append(f"- {r['image']} / {r['noise']} / {r['method']}: {r['note']}")
    if notes:
        text.append("## Notes\n")
        text.append("\n".join(dict.fromkeys(notes)) + "\n")
    if long:
        text.append(f"## Long run ({long['image']}, {long['noise']}, {settings.long_steps} steps)\n")
        rows = []
        for m, c in long["curves"].items():
            rows.append([LABELS.get(m, m), f"{max(c['psnr']):.2f}",
                         c["steps"][int(np.argmax(c["psnr"]))], f"{c['psnr'][-1]:.2f}",
                         f"{c['kept_psnr']:.2f}", c["best_step"],
                         c["collapse_detected_at"] if c["collapse_detected_at"] else "no",
                         f"{c['seconds']:.0f}"])
        text.append(markdown_table(
            ["method", "best PSNR", "at step", "last PSNR", "PSNR of the kept weights",
             "kept step (best validation loss)", "collapse reported at", "seconds"], rows))
        text.append("![PSNR during training](quality_long_run.png)\n")
    text.append("![Crops of every method](quality_montage.png)\n")
    text.append("## Run\n")
    text.append("```\n" + json.dumps(dict(settings=settings.describe(), machine=machine(),
                                          versions=versions()), indent=1) + "\n```\n")
    content = "\n".join(text)
    (out / "quality.md").write_text(content)
    (out / "quality.json").write_text(json.dumps(dict(records=records, long=long,
                                                      settings=settings.describe()), indent=1))
    return content


def time_to_quality_section(by: dict[tuple[str, str, str], dict[str, Any]],
                            cases: list[tuple[str, str]]) -> list[str]:
    """How long ``gr2r`` trains to reach the PSNR that N2V ends at, case by case."""
    rows = []
    for i, n in cases:
        ours, n2v = by.get((i, n, "gr2r"), {}), by.get((i, n, "n2v"), {})
        if "curve" not in ours or "psnr" not in n2v:
            continue
        reached = time_to_reach(ours["curve"], n2v["psnr"])
        when = "not reached" if reached is None else f"{reached[0]:.1f} s (step {reached[1]})"
        ratio = "–" if reached is None else f"{n2v['seconds'] / max(reached[0], 0.01):.1f}×"
        rows.append([i, n, f"{n2v['psnr']:.2f}", f"{n2v['seconds']:.0f}", when,
                     f"{ours['psnr']:.2f}", ratio])
    if not rows:
        return []
    return ["## Time to quality\n",
            "Training time `gr2r` needs to reach the PSNR that N2V ends at (PSNR evaluated every "
            "few steps, evaluation time left out), against N2V's own training and prediction "
            "time.\n",
            markdown_table(["image", "noise", "N2V PSNR", "N2V s", "gr2r reaches it after",
                            "gr2r final PSNR", "N2V time / gr2r time"], rows)]


def plot_montage(records: list[dict[str, Any]], methods: list[str], settings: Settings,
                 store: Store, out: Path, crop: int = 64) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    cases = list(dict.fromkeys((r["image"], r["noise"]) for r in records))
    shown = [m for m in methods
             if any(store.image(f"table-{i}-{n}-{m}-{settings.steps}") is not None
                    for i, n in cases)]
    cols = ["clean", *shown]
    fig, axes = plt.subplots(len(cases), len(cols), figsize=(1.6 * len(cols), 1.7 * len(cases)),
                             squeeze=False)
    for row, (image, noise_name) in enumerate(cases):
        _, clean, _ = make_case(image, noise_name, settings.crop)
        clean2d = clean.reshape(-1, *clean.shape[-2:])[clean.reshape(-1, *clean.shape[-2:])
                                                       .shape[0] // 2]
        c = min(crop, *clean2d.shape)
        y0, x0 = (clean2d.shape[0] - c) // 2, (clean2d.shape[1] - c) // 2
        lo, hi = float(clean2d.min()), float(clean2d.max())
        for col, m in enumerate(cols):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if m == "clean":
                img, title = clean2d, "clean"
            else:
                est = store.image(f"table-{image}-{noise_name}-{m}-{settings.steps}")
                if est is None:
                    ax.axis("off")
                    continue
                est = est.reshape(-1, *est.shape[-2:])[est.reshape(-1, *est.shape[-2:])
                                                        .shape[0] // 2]
                img = est
                r = next(r for r in records
                         if (r["image"], r["noise"], r["method"]) == (image, noise_name, m))
                title = f"{LABELS[m].split(' (')[0]}\n{r['psnr']:.2f} dB"
            ax.imshow(img[y0:y0 + c, x0:x0 + c], cmap="gray", vmin=lo, vmax=hi,
                      interpolation="nearest")
            ax.set_title(title, fontsize=6)
            if col == 0:
                ax.set_ylabel(f"{image}\n{noise_name}", fontsize=6)
    fig.tight_layout()
    path = out / "quality_montage.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_long(long: dict[str, Any], out: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for m, c in long["curves"].items():
        ax.plot(c["steps"], c["psnr"], label=LABELS.get(m, m), marker=".", markersize=3)
        if c.get("collapse_detected_at"):
            ax.axvline(c["collapse_detected_at"], color="grey", linestyle=":", linewidth=1)
    if "noisy_psnr" in long:
        ax.axhline(long["noisy_psnr"], color="black", linestyle="--", linewidth=1,
                   label="noisy input")
    if "bm3d_psnr" in long:
        ax.axhline(long["bm3d_psnr"], color="tab:grey", linestyle="-.", linewidth=1,
                   label="BM3D (true σ)")
    ax.set_xlabel("training step")
    ax.set_ylabel("PSNR of the network being trained (dB)")
    ax.set_title(f"{long['image']}, {long['noise']}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "quality_long_run.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--smoke", action="store_true", help="tiny images, a few steps")
    parser.add_argument("--images", nargs="+", default=list(DEFAULT_IMAGES))
    parser.add_argument("--noises", nargs="+", default=list(DEFAULT_NOISES),
                        choices=list(NOISES))
    parser.add_argument("--methods", nargs="+", default=list(ALL_METHODS),
                        choices=list(ALL_METHODS))
    parser.add_argument("--steps", type=int, help="training steps of every network method")
    parser.add_argument("--crop", type=int, help="side of the test images (pixels)")
    parser.add_argument("--long-steps", type=int, help="steps of the long run")
    parser.add_argument("--long-every", type=int, help="steps between PSNR points of the long run")
    parser.add_argument("--long-case", nargs=2, default=["camera", "gaussian"],
                        metavar=("IMAGE", "NOISE"))
    parser.add_argument("--long-methods", nargs="+", default=["gr2r", "gr2r-paper"],
                        choices=list(NETWORK_METHODS))
    parser.add_argument("--skip-long", action="store_true")
    parser.add_argument("--skip-table", action="store_true")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (one is fastest on a CPU shared with other jobs)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    settings = Settings(args.smoke, args.steps, args.long_steps, args.long_every, args.crop)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    store = Store(out / "runs")
    log(f"quality benchmark: {settings.describe()} -> {out}")
    records = []
    if not args.skip_table:
        records = run_table(settings, args.images, args.noises, args.methods, store)
    long = None
    if not args.skip_long:
        image, noise_name = args.long_case
        long = run_long(settings, image, noise_name, args.long_methods, store)
        noisy, clean, _ = make_case(image, noise_name, settings.crop)
        long["noisy_psnr"] = psnr(clean, noisy, NOISES[noise_name].scale)
        bm3d = store.get(f"table-{image}-{noise_name}-bm3d-{settings.steps}")
        if bm3d and "psnr" in bm3d:
            long["bm3d_psnr"] = bm3d["psnr"]
        plot_long(long, out)
    content = write_table(records, args.methods, settings, out, long)
    if records:
        plot_montage(records, args.methods, settings, store, out)
    print(content)
    return 0


if __name__ == "__main__":
    sys.exit(main())
