"""How well ``engine.assess`` estimates a denoiser's error without the clean image.

For each test image: train the ``fast`` preset (400 steps) once, and at every validation record
the validation loss, the estimated PSNR on the validation patches and the true PSNR of the
weights of the moment (which criterion picks the better weights). Then, for the kept model, the
model of the first validation (an under-trained network, step 50), a Gaussian blur (sd 1.5 px)
and the identity, compare the MSE that ``assess`` estimates from the noisy image alone with the
MSE against the clean image: ``10·log10(estimated / true)`` in dB.

Images: scikit-image's ``camera`` (256x256 crop) and the synthetic 3D nuclei (31x57x57; the
bundled 2D nuclei's "clean" image is a real micrograph with noise of its own, which no estimate
from the noisy image can see), each with the quality benchmark's three synthetic noises; and the
FMD BPAE images with real microscope noise (``/work/shared/data/fmd-bpae``, or ``--fmd``), one
capture of each of the 9 configurations, 512x512. Their reference is the 50-capture average,
matched to the capture: the average's intensity scale and offset fitted to the capture by least
squares (the sample bleaches between captures: fitted scales 0.88-1.19), plus the capture's own
slowly varying difference from it (a Gaussian of sd 16 px; drift and focus, 0.2-6 % of the
difference's energy); its own noise remainder (1/50 of the capture's, times the scale squared) is
subtracted from the measured error. The error against the plain average is reported too.

    python -m benchmarks.estimate --out benchmarks/results
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import NOISES, Store, load_clean, log, machine, markdown_table, versions
from napari_gr2r import engine
from napari_gr2r.engine.quality.estimate import assess

FMD = Path("/work/shared/data/fmd-bpae")
FMD_NAMES = [f"{m}_BPAE_{c}_1" for m in ("Confocal", "TwoPhoton", "WideField") for c in "BGR"]
SYNTHETIC = [(img, noise) for img in ("camera", "nuclei3d")
             for noise in ("gaussian", "poisson-gaussian", "correlated")]
GOAL_DB = 0.5


def blur(block: np.ndarray, sd: float = 1.5) -> np.ndarray:
    """A Gaussian blur of every YX plane: a denoiser that removes signal with the noise."""
    r = math.ceil(3 * sd)
    x = np.arange(-r, r + 1)
    g = np.exp(-(x**2) / (2 * sd**2))
    g /= g.sum()
    kernel = torch.tensor(np.outer(g, g), dtype=torch.float32)[None, None]
    planes = torch.from_numpy(np.ascontiguousarray(block, np.float32))
    planes = planes.reshape(-1, 1, *block.shape[-2:])
    mode = "reflect" if min(block.shape[-2:]) > r else "replicate"
    return F.conv2d(F.pad(planes, (r,) * 4, mode=mode), kernel).reshape(block.shape).numpy()


def identity(block: np.ndarray) -> np.ndarray:
    return block


def gaussian_smooth(image: np.ndarray, sd: float) -> np.ndarray:
    pad = [(n // 2, n // 2) for n in image.shape]
    padded = np.pad(image, pad, mode="reflect")
    fy = np.fft.fftfreq(padded.shape[0])[:, None]
    fx = np.fft.fftfreq(padded.shape[1])[None, :]
    out = np.real(np.fft.ifft2(np.fft.fft2(padded) * np.exp(-2 * np.pi**2 * sd**2 * (fy**2 + fx**2))))
    return out[pad[0][0]:pad[0][0] + image.shape[0], pad[1][0]:pad[1][0] + image.shape[1]]


def load_fmd(name: str, root: Path) -> dict[str, Any]:
    from PIL import Image

    raw = np.asarray(Image.open(root / "raw" / f"{name}.png")).astype(np.float64)
    gt = np.asarray(Image.open(root / "gt" / f"{name}.png")).astype(np.float64)
    design = np.stack([gt.ravel(), np.ones(gt.size)], axis=1)
    (scale, offset), *_ = np.linalg.lstsq(design, raw.ravel(), rcond=None)
    matched = scale * gt + offset
    reference = matched + gaussian_smooth(raw - matched, 16.0)
    remainder = float(np.mean((raw - gt) ** 2) / 50)
    return {"noisy": raw.astype(np.float32), "reference": reference, "gt": gt,
            "remainder": scale**2 * remainder, "gt_remainder": remainder,
            "scale": float(scale), "axes": "YX", "data_range": 255.0,
            **shifted_reference(raw, gt)}


def shifted_reference(raw: np.ndarray, gt: np.ndarray) -> dict[str, Any]:
    """A second truth for a real capture: the average matched to it with a first-order shift
    as well (scanning microscopes' captures lie a fraction of a pixel apart; as
    ``benchmarks.noise_fit``'s FMD truth), plus the slowly varying difference; the capture's
    noise variance from that match, corrected for the capture being one of the 50 averaged
    (the residual holds ``1 - 2s/50 + s²/50`` of it). :func:`true_mse_shifted` uses it."""
    gy, gx = np.gradient(gt)
    design = np.stack([gt.ravel(), np.ones(gt.size), gy.ravel(), gx.ravel()], axis=1)
    coef = np.linalg.lstsq(design, raw.ravel(), rcond=None)[0]
    matched = (design @ coef).reshape(gt.shape)
    matched = matched + gaussian_smooth(raw - matched, 16.0)
    s = float(coef[0])
    variance = float(np.mean((raw - matched) ** 2)) / (1 - 2 * s / 50 + s * s / 50)
    return {"reference_shifted": matched, "shift_scale": s, "shift_noise_variance": variance}


def true_mse_shifted(out: np.ndarray, case: dict[str, Any], divergence: float) -> float:
    """The denoised image's error against :func:`shifted_reference`'s truth: the measured
    error less the average's own noise (``s² σ² / 50``), plus twice its covariance with the
    denoised image (the capture is one of the 50 averaged: the average holds 1/50 of the noise
    the denoiser let through, ``divergence`` = ``tr(Σ J) / N`` from ``engine.assess``)."""
    s, variance = case["shift_scale"], case["shift_noise_variance"]
    measured = float(np.mean((out.astype(np.float64) - case["reference_shifted"]) ** 2))
    return measured - s * s * variance / 50 + 2 * s * divergence / 50


def load_synthetic(image: str, noise: str, crop: int = 256) -> dict[str, Any]:
    clean01, axes = load_clean(image, crop)
    model = NOISES[noise]
    noisy, clean = model.apply(clean01, seed=0)
    return {"noisy": noisy, "reference": clean.astype(np.float64), "remainder": 0.0,
            "axes": axes, "data_range": model.scale}


def train_tracking(case: dict[str, Any], steps: int, seed: int) -> dict[str, Any]:
    """Train ``fast``; at each validation, the two criteria and the true PSNR."""
    noisy, axes, ref = case["noisy"], case["axes"], case["reference"]
    config = engine.TrainConfig.from_preset("fast", steps=steps, seed=seed)
    trainer = engine.Trainer(noisy, axes, config, device="cpu")
    rows, early = [], None
    t0 = time.perf_counter()
    for event in trainer.iter_fit():
        if isinstance(event, engine.TrainingProgress) and event.validated:
            out = engine.denoise(trainer.model_, noisy, axes, device="cpu")
            trainer.net.train()
            true = float(np.mean((out - ref) ** 2)) - case["remainder"]
            rows.append({"step": event.step, "val_loss": event.val_loss,
                         "estimated_psnr": event.estimated_psnr,
                         "true_psnr": 10 * math.log10(case["data_range"] ** 2 / true),
                         "state": copy.deepcopy(trainer.net.state_dict())})
            if early is None:
                early = copy.deepcopy(trainer.model_)
    model = trainer.model
    train_s = time.perf_counter() - t0
    by_val = min(rows, key=lambda r: r["val_loss"])
    # an estimate that fell to zero or below (None) is not picked
    by_est = max(rows, key=lambda r: -math.inf if r["estimated_psnr"] is None
                 else r["estimated_psnr"])
    best = max(rows, key=lambda r: r["true_psnr"])
    for r in rows:
        r.pop("state")
    return {"model": model, "early": early, "train_s": train_s, "curve": rows,
            "pick": {"val_loss": by_val["true_psnr"], "estimated_psnr": by_est["true_psnr"],
                     "oracle": best["true_psnr"], "last": rows[-1]["true_psnr"],
                     "val_step": by_val["step"], "est_step": by_est["step"]}}


def run_case(label: str, case: dict[str, Any], steps: int, seed: int, probes: int,
             ) -> dict[str, Any]:
    case_t0 = time.perf_counter()
    trained = train_tracking(case, steps, seed)
    early_step = trained["curve"][0]["step"]
    denoisers = [("fast", trained["model"]), (f"fast@{early_step}", trained["early"]),
                 ("blur", blur), ("identity", identity)]
    results = []
    for name, denoiser in denoisers:
        t0 = time.perf_counter()
        report = assess(denoiser, case["noisy"], case["axes"], probes=probes, seed=seed,
                        keep_denoised=True, device="cpu")
        seconds = time.perf_counter() - t0
        out = report.denoised.astype(np.float64)
        true = float(np.mean((out - case["reference"]) ** 2)) - case["remainder"]
        row = {"denoiser": name, "true_mse": true, "estimated_mse": report.mse,
               # an estimate of zero (the unbiased estimate fell below zero and was clipped)
               # is an error of minus infinity
               "error_db": 10 * math.log10(report.mse / true) if report.mse > 0 else -math.inf,
               "mse_sd": report.mse_sd,
               "residual_structure": report.residual_structure, "assess_s": seconds,
               "true_psnr": 10 * math.log10(case["data_range"] ** 2 / true),
               "estimated_psnr": report.psnr(case["data_range"])}
        if "gt" in case:
            plain = float(np.mean((out - case["gt"]) ** 2)) - case["gt_remainder"]
            row["error_db_plain_gt"] = (10 * math.log10(report.mse / plain) if report.mse > 0
                                        else -math.inf)
        results.append(row)
        log(f"{label:32s} {name:10s} true {true:9.3f} est {report.mse:9.3f} "
            f"{row['error_db']:+.2f} dB  structure {report.residual_structure:.2f}")
    noise = report.noise
    pick = trained["pick"]
    log(f"{label:32s} weights by val loss {pick['val_loss']:.2f} dB (step {pick['val_step']}), "
        f"by estimated PSNR {pick['estimated_psnr']:.2f} dB (step {pick['est_step']})")
    return {"case": label, "rows": results, "selection": trained["pick"],
            "case_s": time.perf_counter() - case_t0,
            "curve": trained["curve"], "train_s": trained["train_s"],
            "noise": {"sd": noise.sd, "neighbour_correlation": noise.neighbour_correlation}}


def _slug(label: str) -> str:
    """An ASCII file name for a case's label."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", label).strip("_")


def write_report(records: list[dict[str, Any]], out: Path, meta: dict[str, Any]) -> None:
    names = [r["denoiser"] for r in records[0]["rows"]]
    header = ["image", "noise sd", "corr"] + [f"{n} (true dB / error dB)" for n in names]
    table = []
    for rec in records:
        cells = [rec["case"], f"{rec['noise']['sd']:.3g}",
                 f"{rec['noise']['neighbour_correlation']:.2f}"]
        cells += [f"{r['true_psnr']:.2f} / {r['error_db']:+.2f}" for r in rec["rows"]]
        table.append(cells)
    lines = ["# Estimated vs true error (`python -m benchmarks.estimate`)", "",
             f"`{meta['command']}`: {meta['wall_s']:.0f} s wall (the cases' sum) on {meta['machine']['cpu']} "
             f"({meta['machine']['cores']} cores, load {meta['machine'].get('load_avg_1min')}).",
             "", "Each cell: the true PSNR (dB) of the denoiser's output, and the error of the "
             "estimate, `10·log10(estimated MSE / true MSE)` (dB), from `engine.assess` with "
             f"{meta['probes']} probes. Goal: |error| ≤ {GOAL_DB} dB.", "",
             markdown_table(header, table)]
    for kind in ("synthetic", "real"):
        errors = [(abs(r["error_db"]), rec["case"], r["denoiser"], r["error_db"])
                  for rec in records if rec["kind"] == kind for r in rec["rows"]]
        if errors:
            worst = max(errors)
            within = sum(e[0] <= GOAL_DB for e in errors)
            lines.append(f"- {kind} noise: worst error {worst[3]:+.2f} dB ({worst[1]}, "
                         f"{worst[2]}); {within} of {len(errors)} within ±{GOAL_DB} dB; "
                         f"median |error| {np.median([e[0] for e in errors]):.2f} dB.")
    real = [r for rec in records if rec["kind"] == "real" for r in rec["rows"]]
    if real:
        plain = max(real, key=lambda r: abs(r["error_db_plain_gt"]))
        lines.append(f"- real noise against the plain 50-capture average (not matched to the "
                     f"capture): worst error {plain['error_db_plain_gt']:+.2f} dB.")
    lines += ["", "## Which weights to keep: validation loss or estimated PSNR", "",
              "True PSNR (dB) of the weights each criterion picks among the validations of "
              "one run (`oracle`: the best of them; `last`: the final weights).", ""]
    sel_rows = [[rec["case"], rec["selection"]["val_loss"], rec["selection"]["estimated_psnr"],
                 rec["selection"]["oracle"], rec["selection"]["last"],
                 f"{rec['selection']['val_step']} / {rec['selection']['est_step']}"]
                for rec in records]
    lines.append(markdown_table(["image", "by validation loss", "by estimated PSNR", "oracle",
                                 "last", "steps picked (val / est)"], sel_rows))
    gain = [rec["selection"]["estimated_psnr"] - rec["selection"]["val_loss"] for rec in records]
    lines.append(f"Mean gain of picking by estimated PSNR: {np.mean(gain):+.3f} dB "
                 f"(better on {sum(g > 1e-9 for g in gain)}, worse on "
                 f"{sum(g < -1e-9 for g in gain)} of {len(gain)}).")
    (out / "estimate.md").write_text("\n".join(lines) + "\n")
    (out / "estimate.json").write_text(json.dumps({"meta": meta, "records": records}, indent=1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--probes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fmd", type=Path, default=FMD)
    parser.add_argument("--only", default="", help="comma-separated case labels to run")
    parser.add_argument("--smoke", action="store_true",
                        help="one small case (a 128² crop), 60 steps")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cases: list[tuple[str, str, Any]] = [
        (f"{img} / {NOISES[n].label}", "synthetic", lambda i=img, n=n: load_synthetic(i, n))
        for img, n in SYNTHETIC]
    if args.fmd.exists():
        cases += [(f"FMD {name[:-2]}", "real", lambda n=name: load_fmd(n, args.fmd))
                  for name in FMD_NAMES]
    if args.smoke:
        (img, n), = SYNTHETIC[:1]
        cases = [(cases[0][0], "synthetic", lambda: load_synthetic(img, n, crop=128))]
        args.steps = 60
    if args.only:
        wanted = [w.strip() for w in args.only.split(",")]
        cases = [c for c in cases if any(w in c[0] for w in wanted)]
    store = Store(args.out / "runs" / "estimate")
    records = []
    for label, kind, loader in cases:
        key = f"{_slug(label)}-{args.steps}-{args.probes}-{args.seed}"
        rec = None if args.smoke else store.get(key)
        if rec is None:
            rec = run_case(label, loader(), args.steps, args.seed, args.probes)
            rec["kind"] = kind
            store.put(key, rec)
        records.append(rec)
    meta = {"command": " ".join(["python -m benchmarks.estimate", *argv]),
            "wall_s": sum(r["case_s"] for r in records), "steps": args.steps, "probes": args.probes,
            "machine": machine(), "versions": versions()}
    write_report(records, args.out, meta)
    log(f"wrote {args.out / 'estimate.md'}: {meta['wall_s']:.0f} s of runs "
        f"({time.perf_counter() - t0:.0f} s in this session)")


if __name__ == "__main__":
    main()
