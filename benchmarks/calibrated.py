"""Noise calibrated from repeated captures against noise fitted on the image, on real noise.

For each FMD BPAE configuration (the 256x256 crops in ``benchmarks/data/fmd``): a calibration
from its four captures (``engine.calibrate_noise``: repeated captures of one field, no ground
truth involved); then, on one capture, the ``fast`` preset trained twice, with the noise fitted
on the capture (the default) and with the calibration (``Trainer(..., noise=cal)``), each
scored against the ground truth; and the error of ``engine.assess``'s estimate for the
fitted-noise model, with the noise fitted on the capture and with the calibration. The true
error is measured as in :mod:`benchmarks.estimate` (the 50-capture average matched to the
capture, its own noise remainder subtracted), and again against a second truth
(:func:`benchmarks.estimate.true_mse_shifted`: the average matched with a first-order shift as
well, and the capture's own share of the average taken into account).

    python -m benchmarks.calibrated --out benchmarks/results        # ~15 min on one thread
    python -m benchmarks.calibrated --configs Confocal_BPAE_G --steps 20 --out /tmp/c

One torch thread. Nothing is tuned on these figures.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import log, machine, markdown_table, versions
from .estimate import load_fmd, true_mse_shifted
from .realnoise import CONFIGS, DATA, RANGE, load


def _calibration(config: str) -> tuple[Any, str]:
    from napari_gr2r import engine

    frames = np.stack([load(config, c)[0] for c in (1, 2, 3, 4)])
    try:
        cal = engine.calibrate_noise(frames, axes="TYX")
    except engine.GR2RError as exc:
        return None, f"refused: {exc}"
    return cal, f"gain {cal.gain[0]:.3g}, offset {cal.offset[0]:+.3g}"


def _true(out: np.ndarray, case: dict[str, Any]) -> float:
    return float(np.mean((out.astype(np.float64) - case["reference"]) ** 2)) - case["remainder"]


def _db(mse: float) -> float:
    return 10 * math.log10(RANGE**2 / mse)


def _scaled(cal: Any, k: float) -> Any:
    """The calibration with its variance (line and knots) times ``k``."""
    import dataclasses

    return dataclasses.replace(
        cal, gain=[g * k for g in cal.gain], offset=[o * k for o in cal.offset],
        knots=None if cal.knots is None else [[x, [v * k for v in vs]] for x, vs in cal.knots])


def run(config: str, capture: int, steps: int | None = None, seeds: int = 1,
        train_scale: float = 1.0) -> dict[str, Any]:
    from napari_gr2r import engine

    cal, described = _calibration(config)
    # training may use the calibration scaled (a measurement of how the generated noise's
    # level moves the result); the estimate always uses it as measured
    train_cal = _scaled(cal, train_scale) if cal is not None and train_scale != 1 else cal
    case = load_fmd(f"{config}_{capture}", DATA)
    noisy = case["noisy"]
    row: dict[str, Any] = {"config": config, "capture": capture, "calibration": described}
    models = {}
    for seed in range(seeds):
        for kind, noise in (("fitted", None), ("calibrated", train_cal)):
            if kind == "calibrated" and cal is None:
                continue
            config_ = engine.TrainConfig.from_preset(
                "fast", seed=seed, **({"steps": steps} if steps is not None else {}))
            t0 = time.perf_counter()
            model = engine.train(noisy, "YX", config_, device="cpu", noise=noise)
            if seed == 0:  # the estimate is judged on the first seed's model
                models[kind] = model
                row[f"{kind}_train_s"] = round(time.perf_counter() - t0, 1)
            out = engine.denoise(model, noisy, "YX", device="cpu")
            row.setdefault(f"{kind}_psnr_seeds", []).append(round(_db(_true(out, case)), 3))
    for kind in ("fitted", "calibrated"):
        if f"{kind}_psnr_seeds" in row:  # the mean over seeds (one seed: that seed's)
            row[f"{kind}_psnr"] = round(float(np.mean(row[f"{kind}_psnr_seeds"])), 3)
    for kind, noise in (("fitted", "fit"), ("calibrated", cal)):
        if noise is None:
            continue
        report = engine.assess(models["fitted"], noisy, "YX", noise=noise, seed=0,
                               keep_denoised=True, device="cpu")
        true = _true(report.denoised, case)
        # an estimate that fell to zero (``report.unresolved``) is -inf dB off
        row[f"estimate_{kind}_db"] = _error_db(report.mse, true)
        shifted = true_mse_shifted(report.denoised, case, report.divergence)
        row[f"estimate_{kind}_db_shifted"] = _error_db(report.mse, shifted)
        low, high = report.mse_interval
        row[f"estimate_{kind}_covered"] = bool(low <= true <= high)
        row[f"estimate_{kind}_covered_shifted"] = bool(low <= shifted <= high)
        row[f"estimate_{kind}_width_db"] = round(10 * math.log10(high / low), 2) if low > 0 \
            else math.inf
        # the interval's parts, so that it can be recomputed with other allowances
        row[f"estimate_{kind}_parts"] = _parts(report, true, shifted)
    log(json.dumps(row))
    return row


def _error_db(estimate: float, true: float) -> float:
    return round(10 * math.log10(estimate / true), 3) if estimate > 0 else -math.inf


def _parts(report: Any, true: float, shifted: float) -> dict[str, float]:
    """What :func:`napari_gr2r.engine.quality.report.mse_interval` is made of, with the truths."""
    from napari_gr2r.engine.quality.report import sampling_sd

    mse = report.residual_mse - report.noise_variance + 2 * report.divergence
    return {"mse": mse, "noise_variance": report.noise_variance,
            "divergence": report.divergence, "mse_sd": report.mse_sd,
            "spread": report.noise.spread,
            "sampling_sd": sampling_sd(mse, report.noise_variance, report.divergence,
                                       report.propagated_noise, report.pixels,
                                       report.noise.kernel),
            "true": true, "shifted": shifted}


def _per_seed(row: dict[str, Any]) -> str:
    """The calibrated - fitted difference of each seed (paired: the same seed trains both)."""
    fitted, calibrated = row.get("fitted_psnr_seeds", []), row.get("calibrated_psnr_seeds", [])
    if len(calibrated) < 2:
        return "-"
    return " / ".join(f"{c - f:+.2f}" for f, c in zip(fitted, calibrated))


def _cell(row: dict[str, Any], key: str, fmt: str = "{:.2f}") -> str:
    return fmt.format(row[key]) if key in row else "-"


def write(rows: list[dict[str, Any]], out: Path, command: str, load_avg: str) -> None:
    table = [[r["config"], r["calibration"][:60], _cell(r, "fitted_psnr"),
              _cell(r, "calibrated_psnr"),
              (f"{r['calibrated_psnr'] - r['fitted_psnr']:+.2f}" if "calibrated_psnr" in r
               else "-"),
              _per_seed(r),
              _cell(r, "estimate_fitted_db", "{:+.2f}"),
              _cell(r, "estimate_calibrated_db", "{:+.2f}"),
              f"{_cell(r, 'estimate_fitted_db_shifted', '{:+.2f}')} / "
              f"{_cell(r, 'estimate_calibrated_db_shifted', '{:+.2f}')}",
              f"{r.get('estimate_fitted_covered', '-')} / {r.get('estimate_calibrated_covered', '-')}",
              f"{r.get('estimate_fitted_width_db', '-')} / {r.get('estimate_calibrated_width_db', '-')}"]
             for r in rows]
    cal = [r for r in rows if "calibrated_psnr" in r]
    lines = [
        "# Noise calibrated from four captures against noise fitted on the capture (FMD BPAE)",
        "", f"Command: `{command}` ({load_avg}). PSNR (dB, range 255) against the 50-capture "
        "average matched to the capture (the mean over the seeds where there are several, "
        "each seed training both); estimate error `10·log10(estimated / true MSE)` of "
        "`engine.assess` on the fitted-noise model, with the noise fitted on the capture and "
        "with the calibration; `covered`: the true MSE inside the report's 90 % interval, and "
        "that interval's width in dB (inf: its lower MSE bound is 0).", "",
        markdown_table(["configuration", "calibration (input units)", "trained, fitted noise",
                        "trained, calibrated", "difference", "difference per seed",
                        "estimate error, fitted noise",
                        "estimate error, calibrated",
                        "estimate error against the shift-matched truth (fitted / calibrated)",
                        "covered (fitted / calibrated)",
                        "interval width, dB (fitted / calibrated)"], table),
        ""]
    if cal:
        diff = [r["calibrated_psnr"] - r["fitted_psnr"] for r in cal]
        err_fit = [abs(r["estimate_fitted_db"]) for r in cal]
        err_cal = [abs(r["estimate_calibrated_db"]) for r in cal]
        lines += [
            f"- Training with the calibration against the fitted noise: {np.mean(diff):+.2f} dB "
            f"on average, at least as good on {sum(d >= -0.05 for d in diff)} of {len(diff)} "
            "(within 0.05 dB counted as as good).",
            f"- Estimate error (|dB|, the configurations with a calibration): fitted noise "
            f"median {np.median(err_fit):.2f}, worst {max(err_fit):.2f}; calibrated median "
            f"{np.median(err_cal):.2f}, worst {max(err_cal):.2f}."]
        shifted = [r for r in cal if "estimate_calibrated_db_shifted" in r]
        if shifted:
            fit_s = [abs(r["estimate_fitted_db_shifted"]) for r in shifted]
            cal_s = [abs(r["estimate_calibrated_db_shifted"]) for r in shifted]
            lines.append(
                f"- The same against the shift-matched truth (`benchmarks.estimate."
                f"true_mse_shifted`): fitted noise median {np.median(fit_s):.2f}, worst "
                f"{max(fit_s):.2f}; calibrated median {np.median(cal_s):.2f}, worst "
                f"{max(cal_s):.2f}.")
        lines.append("")
    (out / "calibrated.md").write_text("\n".join(lines))
    (out / "calibrated.json").write_text(json.dumps(
        {"command": command, "load": load_avg, "machine": machine(), "versions": versions(),
         "rows": rows},
        indent=1))


def main(argv: list[str] | None = None) -> None:
    import os

    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--capture", type=int, default=1)
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps (default: the fast preset's)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="train both with seeds 0..N-1 (the estimate: seed 0's model)")
    parser.add_argument("--train-scale", type=float, default=1.0,
                        help="train with the calibration's variance times this (the estimate "
                             "keeps it as measured)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--merge", type=Path, nargs="+",
                        help="only merge calibrated.json files of runs over parts of the "
                             "configurations into --out")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.merge:
        runs = [json.loads(p.read_text()) for p in args.merge]
        rows = [r for run_ in runs for r in run_["rows"]]
        rows.sort(key=lambda r: list(CONFIGS).index(r["config"]))
        write(rows, args.out, " + ".join(r["command"] for r in runs),
              "; ".join(r.get("load", "") for r in runs))
        return
    torch.set_num_threads(1)
    before = os.getloadavg()[0]
    rows = [run(config, args.capture, args.steps, args.seeds, args.train_scale)
            for config in args.configs]
    command = "python -m benchmarks.calibrated" + (
        f" --configs {' '.join(args.configs)}" if args.configs != list(CONFIGS) else "") + (
        f" --capture {args.capture}" if args.capture != 1 else "") + (
        f" --steps {args.steps}" if args.steps is not None else "") + (
        f" --seeds {args.seeds}" if args.seeds != 1 else "") + (
        f" --train-scale {args.train_scale:g}" if args.train_scale != 1 else "")
    write(rows, args.out, command, f"load average {before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after, on {os.cpu_count()} cores")
    log(f"wrote {args.out / 'calibrated.md'}")


if __name__ == "__main__":
    main()
