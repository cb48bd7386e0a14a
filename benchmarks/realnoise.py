"""Denoising quality on real microscope noise: FMD captures of BPAE cells with their ground truth.

::

    python -m benchmarks.realnoise --out benchmarks/results        # the default run
    python -m benchmarks.realnoise --smoke --out /tmp/realnoise     # seconds
    python -m benchmarks.realnoise --methods gr2r-balanced --series-methods \
        --out benchmarks/results                                    # balanced, its own command

``--stored-methods`` shows a method's stored runs found under ``OUT/runs`` with the time and
engine commit they came from, and never re-runs them; by default ``gr2r-balanced``'s, so that the
default run's tables show ``balanced`` once its own command has run into the same ``--out``.

The data (``benchmarks/data/fmd/``, MIT licence beside it) are 256x256 crops of the 36 FMD
captures of the BPAE test field (9 configurations: 3 microscopes x 3 stains, 4 single
captures each) and their 50-frame ground truth. Captures 1-2 were used to develop the engine
and are never scored; the default run scores capture 3 of each configuration (``--captures 3
4`` adds the other held-out capture, for about 1.7 times the time).

Two ways to train, as two users would:

* ``image``: one network per capture, trained on that capture alone;
* ``series``: one network per configuration, trained on all four captures (axes ``SYX``), then
  applied to each; scored on the same held-out captures.

``gr2r-paper``, Neighbor2Neighbor and the training on the series (``--series-methods``,
default ``gr2r`` and ``n2c``; add ``n2v``) run on ``--extra-configs`` only (default: the F-actin
configuration of each microscope), so that the default run fits in 30 minutes on two cores;
``--extra-configs`` with all nine names runs everything everywhere.

Every network method uses the engine's ``fast`` preset (its own step budget) unless its name
says otherwise; N2V (CAREamics, its default network) gets the same wall time as ``gr2r`` on the
same data. BM3D runs twice: as a user would (the noise level fitted from the image by the
engine's estimator, a generalised Anscombe transform, the stabilised image's sigma from
scikit-image's wavelet estimator, the closed-form unbiased inverse), and with the oracle
sigma of the true residual ``raw - gt`` (white Gaussian). Nothing but ``n2c`` (supervised, the
ceiling) and the scoring sees the ground truth. Runs go two processes at a time (``--jobs``),
one torch thread each; finished runs are stored under ``OUT/runs`` and reused.

The module is longer than 400 lines because the runs, the report's tables and the montage share
one record layout (:class:`Task` keys, the stored records); the training settings measured on the
development captures live in :mod:`benchmarks.realnoise_levers`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .common import Store, Timer, log, machine, markdown_table, psnr, ssim, versions

DATA = Path(__file__).resolve().parent / "data" / "fmd"
MICROSCOPES = ("Confocal", "TwoPhoton", "WideField")
STAINS = ("B", "G", "R")
CONFIGS = tuple(f"{m}_BPAE_{s}" for m in MICROSCOPES for s in STAINS)
RANGE = 255.0
IMAGE_METHODS = ("noisy", "gr2r", "gr2r-scratch", "gr2r-balanced", "gr2r-paper", "n2n", "n2v",
                 "n2c", "bm3d", "bm3d-oracle")
SERIES_METHODS = ("gr2r", "n2v", "n2c")
DEFAULT_SERIES = ("gr2r", "n2c")
EXTRA_METHODS = ("gr2r-paper", "n2n")
"""Run on ``--extra-configs`` only (by default the three F-actin configurations), to keep the
default run within 30 minutes on two cores."""
DEFAULT_METHODS = tuple(m for m in IMAGE_METHODS if m != "gr2r-balanced")
"""The default run's methods: ``balanced`` (four networks trained side by side, about two thirds of
the default run's work again) runs as its own command, and the default run shows its stored runs
(``--stored-methods``)."""
LABELS = {
    "noisy": "noisy input", "gr2r": "gr2r fast", "gr2r-scratch": "gr2r fast from scratch",
    "gr2r-balanced": "gr2r balanced",
    "gr2r-paper": "gr2r-paper", "n2n": "Neighbor2Neighbor", "n2v": "N2V (CAREamics)",
    "n2c": "n2c (supervised)", "bm3d": "BM3D (estimated σ, VST)",
    "bm3d-oracle": "BM3D (oracle σ)",
}


def load(config: str, capture: int) -> tuple[np.ndarray, np.ndarray]:
    """``(raw, gt)`` of one capture, float32 on 0-255."""
    from skimage.io import imread

    name = f"{config}_{capture}.png"
    return (imread(DATA / "raw" / name).astype(np.float32),
            imread(DATA / "gt" / name).astype(np.float32))


@dataclass(frozen=True)
class Task:
    mode: str  # "image" or "series"
    config: str
    capture: int  # the capture trained on ("image") or 0 ("series": all four)
    method: str
    smoke: bool = False

    @property
    def key(self) -> str:
        where = f"c{self.capture}" if self.mode == "image" else "all"
        return f"real-{self.mode}-{self.config}-{where}-{self.method}{'-smoke' if self.smoke else ''}"


def _train_config(method: str, smoke: bool) -> Any:
    from napari_gr2r import engine

    preset = "balanced" if method == "gr2r-balanced" else "fast"
    name = {"gr2r-balanced": "gr2r", "n2n": "gr2r", "gr2r-scratch": "gr2r"}.get(method, method)
    extra: dict[str, Any] = dict(width=8, patch_size=16, batch_size=2, steps=4, val_every=2,
                                 event_every=1) if smoke else {}
    # gr2r fast and balanced start from the engine's priors (their presets' default); the other
    # methods from random weights, as they are published, and as the fast network did before,
    # their output as trained
    start = {} if method in ("gr2r", "gr2r-balanced") else {"start": "scratch",
                                                             "keep_mean": False}
    return engine.TrainConfig.from_preset(preset, method=name, seed=0, net_dims="2d",
                                          **start, **extra)


def _engine_noise_classes() -> tuple[Any, Any]:
    """The engine's ``Normalization`` and ``NoiseLevel``."""
    from napari_gr2r.engine.data.normalization import Normalization
    from napari_gr2r.engine.noise.level import NoiseLevel

    return Normalization, NoiseLevel


def bm3d_estimated(raw: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """BM3D as a user would run it on Poisson-Gaussian data: fit the noise, stabilise, denoise."""
    import bm3d
    from skimage.restoration import estimate_sigma

    from .baselines import anscombe, inverse_anscombe

    normalization, noise_level = _engine_noise_classes()
    norm = normalization.fit([raw[None, None]])
    level = noise_level.estimate([norm.apply(raw[None, None])], np.random.default_rng(0))
    scale, low = norm.scale(0), norm.low[0]
    # var(raw) = gain * (raw - low) + read^2, in raw units
    gain, read = level.a[0] * scale, float(np.sqrt(level.b[0])) * scale
    if gain <= 1e-6 * scale:
        sigma = float(estimate_sigma(raw.astype(np.float64)))
        return bm3d.bm3d(raw.astype(np.float64), sigma_psd=sigma).astype(np.float32), dict(
            sigma=sigma)
    stable = anscombe(raw.astype(np.float64) - low, read, gain)
    sigma = float(estimate_sigma(stable))
    out = inverse_anscombe(bm3d.bm3d(stable, sigma_psd=sigma), read, gain) + low
    return out.astype(np.float32), dict(gain=gain, read_sd=read, vst_sigma=sigma)


def run_task(task: Task, seconds_budget: float | None = None) -> tuple[dict[str, Any], Any]:
    """Run one method; returns the record and the estimates (one per scored capture)."""
    import torch

    from napari_gr2r import engine

    from . import baselines

    torch.set_num_threads(1)
    missing = {"n2v": (baselines.careamics_available, "careamics"),
               "bm3d": (baselines.bm3d_available, "bm3d"),
               "bm3d-oracle": (baselines.bm3d_available, "bm3d")}.get(task.method)
    if missing and not missing[0]():
        return dict(asdict(task), seconds=0.0, scores={},
                    skipped=f"{missing[1]} is not installed"), None
    captures = [task.capture] if task.mode == "image" else [1, 2, 3, 4]
    pairs = [load(task.config, c) for c in captures]
    raws = np.stack([p[0] for p in pairs])
    gts = np.stack([p[1] for p in pairs])
    data, axes = (raws[0], "YX") if task.mode == "image" else (raws, "SYX")
    notes: dict[str, Any] = {}
    with Timer() as timer:
        if task.method == "noisy":
            out = raws.copy()
        elif task.method == "bm3d-oracle":
            import bm3d

            sig = [float(np.std(r - g)) for r, g in zip(raws, gts)]
            out = np.stack([bm3d.bm3d(r.astype(np.float64), sigma_psd=s)
                            for r, s in zip(raws, sig)]).astype(np.float32)
            notes["sigma"] = sig
        elif task.method == "bm3d":
            results = [bm3d_estimated(r) for r in raws]
            out = np.stack([r[0] for r in results])
            notes["fit"] = [r[1] for r in results]
        elif task.method == "n2v":
            baselines.seed_everything(0)
            seconds = seconds_budget if seconds_budget is not None else 10.0
            careamist = baselines.train_n2v(data, steps=100_000, patch=32 if task.smoke else 64,
                                            batch=8, max_seconds=seconds, axes=axes)
            out = np.stack([baselines.predict_n2v(careamist, r) for r in raws])
            notes.update(steps=int(careamist.trainer.global_step), wall_budget_s=round(seconds, 1))
        else:
            cfg = _train_config(task.method, task.smoke)
            if task.method == "n2n":
                trainer = baselines.neighbor2neighbor_trainer(data, axes, cfg)
            else:
                target = (gts[0] if task.mode == "image" else gts) if task.method == "n2c" else None
                trainer = engine.Trainer(data, axes, cfg, target=target, device="cpu")
            collapsed = False
            trace, traced_s = [], 0.0
            for event in trainer.iter_fit():
                collapsed |= isinstance(event, engine.CollapseDetected)
                if task.method in TRACED and isinstance(event, engine.TrainingProgress) \
                        and event.validated:
                    t0 = time.perf_counter()
                    trace.append(_trace_point(task, trainer, event, data, axes, gts, traced_s))
                    traced_s += time.perf_counter() - t0
            model = trainer.model
            if trace:
                # the trace's own denoising is the benchmark's, not the method's: its time is
                # kept apart from the run's ``seconds``
                notes.update(trace=trace, trace_s=round(traced_s, 2))
            out = engine.denoise(model, data, axes=axes, device="cpu").reshape(raws.shape)
            level = model.noise_level
            scale = model.normalization.scale(0)
            notes.update(steps=cfg.steps, collapsed=collapsed,
                         noise=dict(a=level.a[0] * scale, b=level.b[0] * scale**2,
                                    low=model.normalization.low[0],
                                    rho=level.neighbour_correlation))
    scores = {str(c): dict(psnr=psnr(g, o, RANGE), ssim=ssim(g, o, RANGE),
                           **_gain_matched(r, g, o))
              for c, r, g, o in zip(captures, raws, gts, out)}
    seconds = timer.seconds - notes.get("trace_s", 0.0)
    record = dict(asdict(task), seconds=round(seconds, 2), scores=scores,
                  finished=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  commit=_commit(), **notes)
    return record, out


def _commit() -> str | None:
    """The checkout's commit (with ``+`` when it has uncommitted changes), if it is a git one."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                             capture_output=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, text=True, capture_output=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+" if dirty.strip() else "")


TRACED = ("gr2r-balanced",)
"""Runs whose every validation is logged with the PSNR of the network being trained."""


def _trace_point(task: Task, trainer: Any, event: Any, data: np.ndarray, axes: str,
                 gts: np.ndarray, traced_s: float) -> dict[str, float]:
    """The PSNR of the weights being trained at a validation; ``elapsed_s`` is the run's
    time without the ``traced_s`` seconds the earlier points took."""
    import copy
    import dataclasses

    from napari_gr2r import engine

    current = dataclasses.replace(trainer.model, net=copy.deepcopy(trainer.net))
    out = engine.denoise(current, data, axes=axes, device="cpu").reshape(gts.shape)
    elapsed = event.elapsed_s - traced_s
    point = dict(step=event.step, elapsed_s=round(elapsed, 1),
                 val_loss=event.val_loss, estimated_psnr=event.estimated_psnr,
                 psnr=float(np.mean([psnr(g, o, RANGE) for g, o in zip(gts, out)])))
    log(f"{task.key} step {event.step}/{event.total_steps}, {elapsed:.0f} s: "
        f"PSNR of the current weights {point['psnr']:.2f} dB, estimated "
        f"{_fmt(event.estimated_psnr)} dB, validation loss {event.val_loss:.4g}")
    return point


def _worker(task: Task, out: Path, seconds_budget: float | None) -> dict[str, Any]:
    store = Store(out / "runs")
    record = store.get(task.key)
    if record is None:
        record, estimate = run_task(task, seconds_budget)
        store.put(task.key, record, estimate)
    return record


def plan(configs: list[str], captures: list[int], methods: list[str], series: list[str],
         smoke: bool, extra_configs: list[str] | None = None) -> list[Task]:
    extra = configs if extra_configs is None else extra_configs
    tasks = [Task("image", c, k, m, smoke) for c in configs for k in captures for m in methods
             if m not in EXTRA_METHODS or c in extra]
    tasks += [Task("series", c, 0, m, smoke) for c in configs for m in series
              if m in SERIES_METHODS and c in extra]
    return tasks


def run_all(tasks: list[Task], out: Path, jobs: int) -> list[dict[str, Any]]:
    """Every task, ``jobs`` processes at a time; N2V after the ``gr2r`` it is timed against."""
    records: dict[Task, dict[str, Any]] = {}
    cost = {"gr2r-balanced": 4, "gr2r-paper": 5, "n2n": 4, "n2c": 2}

    def go(batch: list[Task], budgets: dict[Task, float | None]) -> None:
        if jobs <= 1:
            for t in batch:
                log(f"{t.key} ...")
                records[t] = _worker(t, out, budgets.get(t))
            return
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {t: pool.submit(_worker, t, out, budgets.get(t)) for t in batch}
            for t, f in futures.items():
                records[t] = f.result()
                log(f"{t.key}: {_short(records[t])}")

    # gr2r first, then N2V with gr2r's wall time on the same data, then the rest
    go([t for t in tasks if t.method == "gr2r"], {})
    budgets: dict[Task, float | None] = {}
    for t in (t for t in tasks if t.method == "n2v"):
        ref = Task(t.mode, t.config, t.capture, "gr2r", t.smoke)
        ref_record = records.get(ref) or Store(out / "runs").get(ref.key)
        budgets[t] = ref_record["seconds"] if ref_record else None
    go([t for t in tasks if t.method == "n2v"], budgets)
    rest = [t for t in tasks if t.method not in ("gr2r", "n2v")]
    go(sorted(rest, key=lambda t: -cost.get(t.method, 1)), {})
    return [records[t] for t in tasks]


def _short(record: dict[str, Any]) -> str:
    if record.get("skipped"):
        return f"skipped: {record['skipped']}"
    values = [s["psnr"] for s in record["scores"].values()]
    return f"PSNR {np.mean(values):.2f} dB, {record['seconds']:.0f} s"


# --------------------------------------------------------------------------------------------
# reports


def _scores(records: list[dict[str, Any]], captures: list[int]) -> dict[tuple, dict[str, float]]:
    """``(mode, config, capture, method) -> {psnr, ssim}`` for the scored captures."""
    out = {}
    for r in records:
        for c, s in r["scores"].items():
            if int(c) in captures:
                out[(r["mode"], r["config"], int(c), r["method"])] = s
    return out


def brightness(raw: np.ndarray, gt: np.ndarray) -> float:
    """``k``: the least-squares factor of the capture ``raw`` on its ground truth ``gt``."""
    return float(np.sum(raw.astype(np.float64) * gt) / np.sum(gt.astype(np.float64) ** 2))


def _gain_matched(raw: np.ndarray, gt: np.ndarray, est: np.ndarray) -> dict[str, float]:
    """``psnr_k``: PSNR against the ground truth rescaled to the capture's own brightness
    (``k gt``, ``k`` the least-squares fit of the capture on ``gt``), and ``k``.

    The captures' brightness differs from the 50-frame average by a few per cent (up to
    15 %: excitation and detector drift); a denoiser can only estimate the capture's own
    expected value, so this is the part of the error that denoising can remove.
    """
    k = brightness(raw, gt)
    return dict(psnr_k=psnr(k * gt, est, RANGE), k=k)


def add_gain_matched(records: list[dict[str, Any]], out: Path) -> None:
    """Add :func:`_gain_matched`'s scores to the records made before runs scored them, from
    their stored denoised images where those are kept (the repository keeps only the JSON)."""
    store = Store(out / "runs")
    for r in records:
        if not r.get("scores"):
            continue
        estimate = store.image(Task(r["mode"], r["config"], r["capture"], r["method"],
                                    r.get("smoke", False)).key)
        if estimate is None:
            continue
        captures = [r["capture"]] if r["mode"] == "image" else [1, 2, 3, 4]
        for c, est in zip(captures, estimate.reshape(-1, *estimate.shape[-2:])):
            r["scores"][str(c)].update(_gain_matched(*load(r["config"], c), est))


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _only(by_group: dict[str, Any], method: str) -> str:
    """" (G only)"-style note for a method that ran on some configurations only."""
    ran = [c for c in CONFIGS if f"{method}/psnr" in by_group.get(c, {})]
    if len(ran) in (0, len(CONFIGS)):
        return ""
    if len(ran) < len(STAINS):
        return f" ({', '.join(ran)} only)"
    stains = sorted({c.rsplit("_", 1)[1] for c in ran})
    return f" ({'/'.join(stains)} only)" if len(stains) < len(STAINS) else f" ({len(ran)} configs)"


def summarise(records: list[dict[str, Any]], captures: list[int], methods: list[str]
              ) -> dict[str, Any]:
    """Means per microscope and configuration, and the goals, as plain numbers."""
    sc = _scores(records, captures)
    summary: dict[str, Any] = {"image": {}, "series": {}}
    for mode in ("image", "series"):
        for group in (*MICROSCOPES, *CONFIGS, "all"):
            row = {}
            for m in methods:
                for metric in ("psnr", "ssim", "psnr_k"):
                    vals = [s[metric] for (md, cfg, _, mm), s in sc.items()
                            if md == mode and mm == m and metric in s and (
                                group == "all" or cfg == group or cfg.startswith(group + "_"))]
                    if vals:
                        row[f"{m}/{metric}"] = _mean(vals)
                        row[f"{m}/n"] = len(vals)
            if row:
                summary[mode][group] = row
    goals = {}
    img = summary["image"]

    def diff(a: str, b: str, group: str = "all", mode: str = "image",
             metric: str = "psnr") -> float | None:
        row = summary[mode].get(group, {})
        if f"{a}/{metric}" not in row or f"{b}/{metric}" not in row:
            return None
        return row[f"{a}/{metric}"] - row[f"{b}/{metric}"]

    per_config = [diff("gr2r", "bm3d-oracle", c) for c in CONFIGS if c in img]
    per_config = [v for v in per_config if v is not None]
    goals["gr2r - bm3d-oracle, worst configuration"] = min(per_config) if per_config else None
    goals["gr2r - bm3d-oracle, mean"] = diff("gr2r", "bm3d-oracle")
    goals["gr2r - n2v, mean"] = diff("gr2r", "n2v")
    goals["gr2r - n2c, mean"] = diff("gr2r", "n2c")
    per_config_k = [diff("gr2r", "bm3d-oracle", c, metric="psnr_k") for c in CONFIGS if c in img]
    per_config_k = [v for v in per_config_k if v is not None]
    goals["at the capture's brightness: gr2r - bm3d-oracle, worst configuration"] = (
        min(per_config_k) if per_config_k else None)
    goals["at the capture's brightness: gr2r - bm3d-oracle, mean"] = diff(
        "gr2r", "bm3d-oracle", metric="psnr_k")
    goals["at the capture's brightness: gr2r - n2v, mean"] = diff("gr2r", "n2v", metric="psnr_k")
    goals["at the capture's brightness: gr2r - n2c, mean"] = diff("gr2r", "n2c", metric="psnr_k")
    bal = [(c, diff("gr2r-balanced", "bm3d-oracle", c)) for c in CONFIGS]
    bal = [v for _, v in bal if v is not None]
    goals["gr2r-balanced - bm3d-oracle, mean over the configurations run"] = _mean(bal)
    bal_fast = [diff("gr2r-balanced", "gr2r", c) for c in CONFIGS]
    goals["gr2r-balanced - gr2r fast, same configurations"] = _mean(
        [v for v in bal_fast if v is not None])
    series = [summary["series"][c]["gr2r/psnr"] - img[c]["gr2r/psnr"] for c in CONFIGS
              if "gr2r/psnr" in summary["series"].get(c, {}) and "gr2r/psnr" in img.get(c, {})]
    goals["series gr2r - image gr2r, mean over the same configurations"] = _mean(series)
    summary["goals"] = goals
    return summary


def write_report(records: list[dict[str, Any]], captures: list[int], methods: list[str],
                 out: Path, args_line: str, wall: float) -> str:
    add_gain_matched(records, out)
    summary = summarise(records, captures, methods)
    sc = _scores(records, captures)
    total = sum(r["seconds"] for r in records if not r.get("stored"))
    when = (f"wall time {wall / 60:.1f} min" if wall > 0 else "redrawn from the stored runs")
    when += f"; the runs' own times sum to {total / 60:.1f} min (two run at a time)"
    text = ["# Real microscope noise (FMD, BPAE cells)", "",
            f"`{args_line}`; {when}. Scored on capture(s) "
            f"{', '.join(map(str, captures))} of each configuration (256×256 crops, PSNR and SSIM "
            "at data range 255 against the 50-frame ground truth). `image`: one network per "
            "capture; `series`: one network per configuration trained on its four captures. "
            "Network methods: the `fast` preset's network and budget unless named otherwise; N2V "
            "gets `gr2r` fast's wall time on the same data.", ""]
    stored = [r for r in records if r.get("stored")]
    if stored:
        text.append("Not run by this command, shown from the stored runs under `runs/`: " + "; ".join(
            f"{LABELS[r['method']]} on {r['config']}_{r['capture']} (finished "
            f"{r.get('finished', 'at an unrecorded time')}, engine commit "
            f"{r.get('commit') or 'unrecorded'}, {r['seconds'] / 60:.1f} min)" for r in stored)
            + ".\n")
    for mode, title in (("image", "Trained on one capture"), ("series", "Trained on the series "
                                                                        "(four captures)")):
        if not summary[mode]:
            continue
        shown = [m for m in methods if any(f"{m}/psnr" in r for r in summary[mode].values())]
        for metric, digits in (("psnr", 2), ("ssim", 3), ("psnr_k", 2)):
            # psnr_k: only the methods whose runs scored it (runs stored before that carry
            # neither it nor their images)
            columns = [m for m in shown if metric != "psnr_k"
                       or any(f"{m}/psnr_k" in r for r in summary[mode].values())]
            if not columns:
                continue
            if metric == "psnr_k":
                text.append(f"## {title}: mean PSNR against the ground truth at the capture's "
                            "brightness (diagnostic)\n")
                ks = [v["k"] for v in sc.values() if "k" in v]
                span = f"{min(ks):.3f}-{max(ks):.3f}" if ks else "–"
                text.append("Each capture's brightness differs from the 50-frame average "
                            f"(least-squares factor k of the capture on the ground truth: {span} "
                            "in the scored captures); no denoiser can recover that from one "
                            "capture. Scored against `k·gt` instead, the differences between "
                            "methods are those of denoising alone.\n")
            else:
                text.append(f"## {title}: mean {metric.upper()} per microscope\n")
            rows = []
            for g in (*MICROSCOPES, "all"):
                r = summary[mode].get(g, {})
                rows.append([f"**{g}**" if g == "all" else g,
                             *[_fmt(r.get(f"{m}/{metric}"), digits) for m in columns]])
            text.append(markdown_table(["microscope", *[LABELS[m] + _only(summary[mode], m)
                                                        for m in columns]], rows))
        partial = [m for m in shown if any(f"{m}/n" in r for r in summary[mode].values())
                   and summary[mode]["all"].get(f"{m}/n", 0) < summary[mode]["all"].get(
                       f"{shown[0]}/n", 0)]
        if partial:
            extra = [c for c in CONFIGS if any(f"{m}/psnr" in summary[mode].get(c, {})
                                               for m in partial)]
            text.append(f"## {title}: every method on the same images ({', '.join(extra)})\n")
            text.append(f"{', '.join(LABELS[m] for m in partial)} ran on these configurations "
                        "only; PSNR against the ground truth / against it at the capture's "
                        "brightness.\n")
            rows = []
            for c in extra:
                r = summary[mode][c]
                rows.append([c, *[f"{_fmt(r.get(f'{m}/psnr'))} / {_fmt(r.get(f'{m}/psnr_k'))}"
                                  for m in shown]])
            means = []
            for m in shown:
                vals = [summary[mode][c].get(f"{m}/psnr") for c in extra]
                vals_k = [summary[mode][c].get(f"{m}/psnr_k") for c in extra]
                means.append("–" if None in vals else
                             f"**{np.mean(vals):.2f}** / {np.mean([v for v in vals_k if v]):.2f}")
            rows.append(["**mean**", *means])
            text.append(markdown_table(["configuration", *[LABELS[m] for m in shown]], rows))
        text.append(f"## {title}: per image, PSNR (dB) / SSIM\n")
        rows = []
        for cfg in CONFIGS:
            for c in captures:
                cells = [f"{_fmt(sc[k]['psnr'])} / {_fmt(sc[k]['ssim'], 3)}"
                         if (k := (mode, cfg, c, m)) in sc else "–" for m in shown]
                if any(x != "–" for x in cells):
                    rows.append([f"{cfg}_{c}", *cells])
        text.append(markdown_table(["capture", *[LABELS[m] for m in shown]], rows))
    for r in records:
        if not r.get("trace"):
            continue
        where = f"{r['config']}_{r['capture']}" if r["mode"] == "image" else r["config"]
        text.append(f"## {LABELS[r['method']]} on {where}: the network being trained\n")
        points = r["trace"]
        every = max(1, len(points) // 10)
        rows = [[p["step"], f"{p['elapsed_s']:.0f}", _fmt(p["psnr"]), _fmt(p["estimated_psnr"])]
                for i, p in enumerate(points) if i % every == 0 or i == len(points) - 1]
        text.append("PSNR against the ground truth of the weights at each validation (the run "
                    "keeps its best by validation: "
                    f"{_fmt(np.mean([s['psnr'] for s in r['scores'].values()]))} dB), and the "
                    "engine's own estimate (training's `estimated_psnr`: on its validation patches, "
                    "against the data's normalised range, so on another scale than the PSNR).\n")
        text.append(markdown_table(["step", "s", "PSNR", "estimated PSNR"], rows))
    text.append("## Goals (PSNR differences, dB)\n")
    text.append(markdown_table(["comparison", "measured"],
                               [[k, _fmt(v)] for k, v in summary["goals"].items()]))
    text.append("## Noise fitted by the engine (raw units) and wall times\n")
    rows = []
    for r in records:
        if r["method"] == "gr2r":
            n = r.get("noise", {})
            where = f"{r['config']}_{r['capture']}" if r["mode"] == "image" else \
                f"{r['config']} (series)"
            gts = [load(r["config"], c)[1] for c in ([r["capture"]] if r["mode"] == "image"
                                                     else [1, 2, 3, 4])]
            raws = [load(r["config"], c)[0] for c in ([r["capture"]] if r["mode"] == "image"
                                                      else [1, 2, 3, 4])]
            true_sd = float(np.sqrt(np.mean([np.var(a - g) for a, g in zip(raws, gts)])))
            fitted = float(np.sqrt(np.mean([np.mean(n.get("a", 0) * np.maximum(g - n.get(
                "low", 0), 0) + n.get("b", 0)) for g in gts])))
            rows.append([where, _fmt(n.get("a"), 3), _fmt(n.get("b"), 2), _fmt(fitted),
                         _fmt(true_sd), _fmt(n.get("rho"), 2), f"{r['seconds']:.0f}"])
    text.append("`var = a·(x − low) + b` fitted before training; the fitted σ averaged over "
                "the ground truth's intensities against the true residual's σ (which also holds "
                "the capture's brightness offset from the ground truth); ρ: the noise's "
                "neighbour correlation as modelled (0: white).\n")
    text.append(markdown_table(["data", "a", "b", "fitted σ", "true σ", "ρ", "gr2r s"], rows))
    times = {}
    for r in records:
        times.setdefault((r["mode"], r["method"]), []).append(r["seconds"])
    text.append(markdown_table(["mode", "method", "runs", "mean s", "total s"],
                               [[md, LABELS[m], len(v), f"{np.mean(v):.0f}", f"{np.sum(v):.0f}"]
                                for (md, m), v in times.items()]))
    skipped = sorted({f"{LABELS[r['method']]}: {r['skipped']}" for r in records
                      if r.get("skipped")})
    if skipped:
        text.append("Skipped: " + "; ".join(skipped) + ".\n")
    text.append("![Crops of every method](realnoise_montage.png)\n")
    text.append("## Run\n")
    text.append("```\n" + json.dumps(dict(machine=machine(), versions=versions()), indent=1)
                + "\n```\n")
    content = "\n".join(text)
    (out / "realnoise.md").write_text(content)
    (out / "realnoise.json").write_text(json.dumps(dict(records=records, summary=summary,
                                                        captures=captures), indent=1))
    return content


def plot_montage(records: list[dict[str, Any]], methods: list[str], captures: list[int],
                 out: Path, crop: int = 96) -> Path | None:
    """One row per microscope (its ``G`` stain, first scored capture), one column per method."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    store = Store(out / "runs")
    capture = captures[0]
    rows = [c for c in (f"{m}_BPAE_G" for m in MICROSCOPES)
            if any(r["config"] == c and r["mode"] == "image" for r in records)]
    shown = [m for m in methods if any(r["method"] == m and r["mode"] == "image"
                                       for r in records)]
    if not rows:
        return None
    cols = ["ground truth", *shown]
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(1.5 * len(cols), 1.65 * len(rows)),
                             squeeze=False)
    for i, cfg in enumerate(rows):
        _, gt = load(cfg, capture)
        y0, x0 = (gt.shape[0] - crop) // 2, (gt.shape[1] - crop) // 2
        lo, hi = float(np.percentile(gt, 0.5)), float(np.percentile(gt, 99.8))
        for j, m in enumerate(cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if m == "ground truth":
                img, title = gt, "ground truth"
            else:
                key = Task("image", cfg, capture, m).key
                img = store.image(key)
                record = store.get(key)
                if img is None or record is None:
                    ax.axis("off")
                    continue
                img = img.reshape(-1, *img.shape[-2:])[0]
                short = {"bm3d": "BM3D, est. σ", "bm3d-oracle": "BM3D, oracle σ"}.get(
                    m, LABELS[m].split(" (")[0])
                title = f"{short}\n{record['scores'][str(capture)]['psnr']:.2f} dB"
            ax.imshow(img[y0:y0 + crop, x0:x0 + crop], cmap="gray", vmin=lo, vmax=hi,
                      interpolation="nearest")
            ax.set_title(title, fontsize=6)
            if j == 0:
                ax.set_ylabel(f"{cfg}_{capture}", fontsize=6)
    fig.tight_layout()
    path = out / "realnoise_montage.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.realnoise", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--smoke", action="store_true", help="two images, a few steps")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--captures", nargs="+", type=int, default=[3],
                        help="captures scored (and, per image, trained on)")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                        choices=list(IMAGE_METHODS))
    parser.add_argument("--series-methods", nargs="*", default=list(DEFAULT_SERIES),
                        choices=list(SERIES_METHODS),
                        help="methods also trained on each configuration's four captures")
    parser.add_argument("--extra-configs", nargs="+",
                        default=[c for c in CONFIGS if c.endswith("_G")], choices=list(CONFIGS),
                        help=f"configurations {', '.join(EXTRA_METHODS)} and the series run on")
    parser.add_argument("--stored-methods", nargs="*", default=["gr2r-balanced"],
                        choices=list(IMAGE_METHODS),
                        help="methods whose stored runs under OUT/runs are shown (on the "
                             "extra configurations), with the run they came from, and never "
                             "re-run")
    parser.add_argument("--jobs", type=int, default=2, help="processes at a time")
    parser.add_argument("--report-only", action="store_true",
                        help="redraw the reports from the stored runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.configs, args.captures = args.configs[:1], args.captures[:1]
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tasks = plan(args.configs, args.captures, args.methods, args.series_methods, args.smoke,
                 None if args.smoke else args.extra_configs)
    log(f"real-noise benchmark: {len(tasks)} runs, {args.jobs} at a time -> {out}")
    with Timer() as timer:
        if args.report_only:
            store = Store(out / "runs")
            records = [r for t in tasks if (r := store.get(t.key)) is not None]
        else:
            records = run_all(tasks, out, args.jobs)
    methods = list(args.methods)
    store = Store(out / "runs")
    for m in args.stored_methods:
        if m in methods:
            continue
        kept = [dict(r, stored=True) for t in plan(args.configs, args.captures, [m], [],
                                                   args.smoke,
                                                   None if args.smoke else args.extra_configs)
                if (r := store.get(t.key)) is not None and not r.get("skipped")]
        records += kept
        methods += [m] if kept else []
    shown_args = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report-only"]
    line = "python -m benchmarks.realnoise " + " ".join(shown_args)
    content = write_report(records, args.captures, methods, out, line.strip(),
                           0.0 if args.report_only else timer.seconds)
    plot_montage(records, methods, args.captures, out)
    print(content)
    return 0


if __name__ == "__main__":
    sys.exit(main())
