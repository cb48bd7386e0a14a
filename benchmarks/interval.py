"""Does the estimate's 90 % interval hold the true PSNR? Coverage, width and point error.

A development set of synthetic cases built like ``benchmarks/noise_fit.py``'s (the same clean
images, binned 2x2, a centre crop of ``--size`` pixels scaled to 0..1000, and the same noises:
Gaussian, Poisson-Gaussian, clipped Poisson-Gaussian, correlated Gaussian), at ``--levels``
of each noise's three levels and ``--seeds`` seeds. For each image, noise and level a tiny
network (the ``fast`` preset at ``--steps`` steps) is trained once, on the first seed's noisy
image; then, on every seed's noisy image, ``engine.assess`` (its defaults: the noise fitted on
the image, four probes) estimates the error of that network and of a Gaussian blur (sd 1.5
px), and the true PSNR (data range 1000) is measured against the clean image. Scored:

- coverage: how often the true PSNR lies inside ``QualityReport.psnr_interval``;
- the interval's width (dB; infinite when the lower MSE bound reaches zero);
- the point error, estimated minus true PSNR (dB);
- the noise fit's error, the mean fitted variance over the true one, less 1.

Everything ``mse_interval`` is made of is kept per case in the JSON (residual, noise variance,
divergence, probes' spread, the fit's spread), so that other interval rules can be scored on
the same runs without training again (``--tables``).

    python -m benchmarks.interval --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.estimate import blur
from benchmarks.noise_fit import FMD, LEVELS, add_noise, clean_images
from napari_gr2r import engine
from napari_gr2r.engine.quality.estimate import assess

IMAGES = ["cell", "camera", "coins", "fmd_Confocal_BPAE_G", "fmd_WideField_BPAE_R"]
RANGE = 1000.0


DRAWS = 16


def _reference(clean: np.ndarray, kind: str, level: float, rng: np.random.Generator,
               ) -> tuple[np.ndarray, float]:
    """What the noisy image shows on average (the clean image a noise-based estimate can
    see), and that reference's own mean squared error: the Poisson-Gaussian noise has a camera
    offset of 100 photons; clipped noise's mean is not the clean image (``DRAWS`` draws
    averaged: their remainder, the variance over ``DRAWS``, is subtracted from the error)."""
    if kind == "poisson-gaussian":
        return clean + 100 * RANGE / level, 0.0
    if kind != "clipped":
        return clean, 0.0
    draws = np.stack([add_noise(clean, kind, level, rng)[0] for _ in range(DRAWS)])
    return draws.mean(axis=0), float(np.var(draws, axis=0, ddof=1).mean()) / len(draws)


CAPTURES = 4
"""Captures of one field a calibration is made from (the assessed image and three more)."""


def _calibration(noisy: np.ndarray, clean: np.ndarray, kind: str, level: float, seed: int,
                 ) -> tuple[object | None, str]:
    """A calibration from ``CAPTURES`` repeated captures of the case's field (its noisy image
    and fresh draws of the same noise), or None and why it was refused."""
    rng = np.random.default_rng([seed, list(LEVELS).index(kind), int(level * 1000), 11])
    frames = [noisy] + [add_noise(clean, kind, level, rng)[0].astype(np.float32)
                        for _ in range(CAPTURES - 1)]
    try:
        return engine.calibrate_noise(np.stack(frames), axes="TYX"), ""
    except engine.GR2RError as exc:
        return None, str(exc)


def case_rows(name: str, clean: np.ndarray, kind: str, level: float, seeds: int, steps: int,
              sources: tuple[str, ...] = ("fitted",)) -> list[dict]:
    """Train once on seed 0's noisy image; assess the network and the blur on every seed,
    with each of the noise ``sources``: ``fitted`` on the image (the default), ``calibrated``
    from repeated captures (:data:`CAPTURES`)."""
    rows = []
    model = None
    for seed in range(seeds):
        rng = np.random.default_rng([seed, list(LEVELS).index(kind), int(level * 1000), 7])
        noisy, truth = add_noise(clean, kind, level, rng)
        noisy = noisy.astype(np.float32)
        reference, own = _reference(clean, kind, level, rng)
        if model is None:
            config = engine.TrainConfig.from_preset("fast", steps=steps, seed=0)
            model = engine.train(noisy, "YX", config, device="cpu")
        for source in sources:
            noise, refused = "fit", ""
            if source == "calibrated":
                noise, refused = _calibration(noisy, clean, kind, level, seed)
                if noise is None:
                    print(f"{name:22s} {kind:16s} {level:<5g} {seed} calibration refused: "
                          f"{refused}", flush=True)
                    rows.append({"image": name, "noise": kind, "level": level, "seed": seed,
                                 "source": source, "refused": refused})
                    continue
            rows += _assessed(name, kind, level, seed, source, noise, model, noisy, clean,
                              reference, own, truth)
    return rows


def _assessed(name: str, kind: str, level: float, seed: int, source: str, noise: object,
              model: object, noisy: np.ndarray, clean: np.ndarray, reference: np.ndarray,
              own: float, truth: float) -> list[dict]:
    rows = []
    for denoiser_name, denoiser in (("fast", model), ("blur", blur)):
        t0 = time.perf_counter()
        report = assess(denoiser, noisy, "YX", seed=seed, keep_denoised=True, device="cpu",
                        noise=noise)
        out = report.denoised.astype(np.float64).reshape(clean.shape)
        true_mse = float(np.mean((out - reference) ** 2)) - own
        low, high = report.psnr_interval(RANGE)
        true_psnr = 10 * math.log10(RANGE**2 / true_mse)
        rows.append({
            "image": name, "noise": kind, "level": level, "seed": seed,
            "source": source, "denoiser": denoiser_name, "trained_on_this": seed == 0,
            "true_mse": true_mse, "true_psnr": true_psnr, "psnr": report.psnr(RANGE),
            "low": low, "high": high, "inside": bool(low <= true_psnr <= high),
            "width": high - low, "error_db": report.psnr(RANGE) - true_psnr,
            "mse": report.mse, "residual_mse": report.residual_mse,
            "noise_variance": report.noise_variance, "divergence": report.divergence,
            "mse_sd": report.mse_sd, "spread": report.noise.spread,
            "propagated": report.propagated_noise, "pixels": report.pixels,
            "true_variance": truth, "variance_error": report.noise_variance / truth - 1,
            "correlation": report.noise.neighbour_correlation,
            "assess_s": time.perf_counter() - t0})
        r = rows[-1]
        print(f"{name:22s} {kind:16s} {level:<5g} {seed} {source[:3]} {denoiser_name:5s} true "
              f"{true_psnr:6.2f} est {r['psnr']:6.2f} [{low:6.2f}, {high:6.2f}] "
              f"{'in ' if r['inside'] else 'OUT'} var {r['variance_error']:+.3f}", flush=True)
    return rows


def _q(values: list[float], q: float) -> float:
    return float(np.quantile(np.asarray(values, np.float64), q, method="nearest")) \
        if values else math.nan


def summary(rows: list[dict]) -> str:
    """Per noise source, noise (and all): coverage, width and point error as median / 90th /
    worst, and the calibrations refused."""
    lines = []
    for source in ("fitted", "calibrated"):
        of_source = [r for r in rows if r.get("source", "fitted") == source]
        if of_source:
            lines += ["", f"Noise {source}:", "", _summary(of_source)]
        refused = [r for r in of_source if "refused" in r]
        if refused:
            lines += ["", f"Calibrations refused: {len(refused)} "
                      f"({', '.join(sorted({r['noise'] for r in refused}))}): "
                      f"{refused[0]['refused']}"]
    return "\n".join(lines[1:])


def _summary(rows: list[dict]) -> str:
    rows = [r for r in rows if "refused" not in r]
    lines = ["| noise | denoiser | cases | coverage | width median | width 90th | "
             "\\|point error\\| median | 90th | worst | variance error median | 90th abs |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for kind in [*LEVELS, "all"]:
        for den in ("fast", "blur", "both"):
            sel = [r for r in rows if (kind == "all" or r["noise"] == kind)
                   and (den == "both" or r["denoiser"] == den)]
            if not sel:
                continue
            err = [abs(r["error_db"]) for r in sel]
            width = [r["width"] for r in sel]
            var = [r["variance_error"] for r in sel]
            cover = sum(r["inside"] for r in sel) / len(sel)
            lines.append(
                f"| {kind} | {den} | {len(sel)} | {100 * cover:.0f} % | {_q(width, 0.5):.2f} | "
                f"{_q(width, 0.9):.2f} | {_q(err, 0.5):.2f} | {_q(err, 0.9):.2f} | "
                f"{max(err):.2f} | {100 * _q(var, 0.5):+.1f} % | "
                f"{100 * _q([abs(v) for v in var], 0.9):.1f} % |")
    return "\n".join(lines)


def noisy_of(row: dict, images: dict) -> np.ndarray:
    """The noisy image of a case again (the same seeded draw as :func:`case_rows`)."""
    kind, level = row["noise"], row["level"]
    rng = np.random.default_rng([row["seed"], list(LEVELS).index(kind), int(level * 1000), 7])
    return add_noise(images[row["image"]][0], kind, level, rng)[0]


def alternatives(rows: list[dict], images: dict) -> None:
    """Add to each row the mean noise variance other fits give on its noisy image."""
    from benchmarks.noise_fit import est_highpass, est_liu2013, line_is_flat

    done: dict[tuple, dict] = {}
    for row in rows:
        key = (row["image"], row["noise"], row["level"], row["seed"])
        if key not in done:
            noisy = noisy_of(row, images)
            done[key] = {"liu2013": est_liu2013(noisy, np.random.default_rng(row["seed"])),
                         "highpass": est_highpass(noisy, np.random.default_rng(row["seed"])),
                         "flat": line_is_flat(noisy, np.random.default_rng(row["seed"]))}
        row.update(done[key])


def _mse_at(row: dict, scale: float) -> float:
    """The estimate had the noise variance been ``scale`` times the fitted one."""
    return row["residual_mse"] + scale * (2 * row["divergence"] - row["noise_variance"])


def rule_interval(row: dict, sd_rel: float, extra_sd: float = 0.0) -> tuple[float, float]:
    """A 90 % PSNR interval from a relative sd of the noise variance (log-normal) and an
    additive sd of the MSE (probes, sampling)."""
    z = 1.6449
    ends = [_mse_at(row, math.exp(z * sd_rel)), _mse_at(row, math.exp(-z * sd_rel))]
    mc = math.hypot(row["mse_sd"] if math.isfinite(row["mse_sd"]) else 0.0, extra_sd)
    lo, hi = min(ends) - z * mc, max(ends) + z * mc
    top = 10 * math.log10(RANGE**2 / lo) if lo > 0 else math.inf
    return 10 * math.log10(RANGE**2 / max(hi, 1e-30)), top


def score_rule(rows: list[dict], name: str, interval) -> str:
    inside, width = [], []
    for row in rows:
        lo, hi = interval(row)
        inside.append(lo <= row["true_psnr"] <= hi)
        width.append(hi - lo)
    w = np.asarray(width)
    finite = w[np.isfinite(w)]
    return (f"| {name} | {len(rows)} | {100 * np.mean(inside):.0f} % | "
            f"{np.quantile(w, 0.5, method='nearest'):.2f} | "
            f"{np.quantile(w, 0.9, method='nearest'):.2f} | "
            f"{100 * (len(w) - len(finite)) / len(w):.0f} % |")


def rules(rows: list[dict], images: dict) -> str:
    """Interval rules scored on the same cases (the fits' alternatives computed again on each
    noisy image): the interval as the run made it; a systematic term from the disagreement
    of Liu et al.'s level with the fit where the line is flat; and that with the point
    estimate at Liu's level there (what the engine does since)."""
    from napari_gr2r.engine.quality.report import mse_interval, sampling_sd

    if "flat" not in rows[0]:
        alternatives(rows, images)

    def selected(r: dict) -> tuple[dict, float]:
        if not (r["flat"] and r["correlation"] == 0):
            return r, 0.0
        k = r["liu2013"] / r["noise_variance"]
        q = dict(r, mse=max(_mse_at(r, k), 0.0), divergence=r["divergence"] * k,
                 propagated=r["propagated"] * k, noise_variance=r["noise_variance"] * k)
        return q, abs(math.log(k))

    def interval(r: dict, point: bool) -> tuple[float, float]:
        q, d = selected(r) if point else (r, abs(math.log(r["liu2013"] / r["noise_variance"]))
                                          if r["flat"] else 0.0)
        boot = math.sqrt(max(r["spread"] ** 2 - 0.13**2, 0.0))
        spread = math.hypot(boot, max(0.13, d)) if r["correlation"] == 0 else r["spread"]
        samp = sampling_sd(q["mse"], q["noise_variance"], q["divergence"], q["propagated"],
                           q["pixels"])
        lo, hi = mse_interval(q["mse"], q["noise_variance"], q["divergence"], q["mse_sd"],
                              spread, samp)
        return (10 * math.log10(RANGE**2 / max(hi, 1e-30)),
                10 * math.log10(RANGE**2 / lo) if lo > 0 else math.inf)

    lines = ["| noise | rule | cases | coverage | width median | width 90th | infinite |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for kind in [*LEVELS, "all"]:
        sel = [r for r in rows if kind in ("all", r["noise"])]
        for name, f in (("as run", lambda r: (r["low"], r["high"])),
                        ("+ disagreement, + sampling", lambda r: interval(r, False)),
                        ("+ Liu's level as the point", lambda r: interval(r, True))):
            lines.append(f"| {kind} " + score_rule(sel, name, f))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for interval.json")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--levels", default="0,2", help="which of each noise's levels (0-2)")
    parser.add_argument("--images", default=",".join(IMAGES))
    parser.add_argument("--noises", default=",".join(LEVELS))
    parser.add_argument("--fmd", type=Path, default=FMD)
    parser.add_argument("--sources", default="fitted",
                        help="the noise the estimate uses: fitted, calibrated or fitted,calibrated")
    parser.add_argument("--tables", type=Path, help="only the tables of an interval.json")
    parser.add_argument("--rules", action="store_true",
                        help="with --tables: score interval rules on those cases")
    args = parser.parse_args(argv)
    if args.tables:
        rows = json.loads(args.tables.read_text())["rows"]
        print(summary(rows))
        if args.rules:  # the rules are about the fitted noise's interval
            fitted = [r for r in rows if r.get("source", "fitted") == "fitted"]
            print("\n" + rules(fitted, clean_images(args.size, args.fmd)))
        return 0
    torch.set_num_threads(1)
    images = clean_images(args.size, args.fmd)
    levels = [int(i) for i in args.levels.split(",")]
    rows: list[dict] = []
    t0 = time.perf_counter()
    for name in args.images.split(","):
        clean = images[name][0]
        for kind in args.noises.split(","):
            for i in levels:
                rows += case_rows(name, clean, kind, LEVELS[kind][i], args.seeds, args.steps,
                                  tuple(args.sources.split(",")))
                if args.out:  # kept as it goes: a long run stopped early keeps its cases
                    args.out.mkdir(parents=True, exist_ok=True)
                    (args.out / "interval.partial.json").write_text(json.dumps(rows))
    wall = time.perf_counter() - t0
    table = summary(rows)
    print(table)
    print(f"{len(rows)} cases in {wall:.0f} s")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        meta = {"command": " ".join(["python -m benchmarks.interval", *(argv or sys.argv[1:])]),
                "wall_s": wall}
        (args.out / "interval.json").write_text(json.dumps({"meta": meta, "rows": rows},
                                                           indent=0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
