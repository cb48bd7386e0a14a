"""Which of an ensemble's members to average: every subset of `balanced`'s members, scored.

::

    python -m benchmarks.realnoise_members --configs Confocal_BPAE_G --captures 1 2 \\
        --log /tmp/members.jsonl
    python -m benchmarks.realnoise_members --rules /tmp/members.jsonl \\
        --baseline-log benchmarks/results/runs/levers/prior-c12.jsonl

Trains the ``balanced`` preset (an :class:`~napari_gr2r.engine.model.networks.Ensemble`) on each
capture alone, as :mod:`benchmarks.realnoise_levers` does, then denoises the capture with the
mean of every non-empty subset of its members (with the preset's test-time flips) and records,
for each subset, the PSNR against the ground truth (plain and at the capture's brightness) beside
what the engine can see without it: the validation loss and estimated PSNR on the run's held-out
patches (:class:`~napari_gr2r.engine.training.validation.Validator`) and
:func:`~napari_gr2r.engine.assess`'s estimate on the whole capture (the noise fitted on it, the
same seed for every subset, so that the subsets' estimates share their probes).

``--rules`` trains nothing: it reads such a log and prints, for selection rules that use only
the self-supervised scores, the PSNR of the subset each rule picks against the mean of all
members (the preset today) and against ``fast`` (the runs labelled ``--baseline`` in
``--baseline-log``, their 8-flip columns).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

from .common import log, log_row, psnr
from .realnoise import RANGE, brightness
from .realnoise_levers import capture_parser, distinct_captures, set_overrides, trainer_for


def subset_model(model, members: tuple[int, ...]):
    """``model`` with its ensemble cut down to ``members`` (their mean), sharing the weights."""
    import torch.nn as nn

    from napari_gr2r.engine.model.networks import Ensemble

    full = model.net
    net = Ensemble.__new__(Ensemble)
    nn.Module.__init__(net)
    net.dims, net.channels = full.dims, full.channels
    net.members = nn.ModuleList([full.members[i] for i in members])
    net.train(full.training)
    config = dataclasses.replace(model.config, members=len(members))
    return dataclasses.replace(model, net=net, config=config)


def run(config: str, capture: int, preset: str, overrides: dict | None = None) -> dict:
    """One ``preset`` run on one capture and the scores of every subset of its members."""
    from napari_gr2r import engine

    trainer, raw, gt = trainer_for(config, capture, overrides or {}, preset)
    t0 = time.perf_counter()
    for _ in trainer.iter_fit():
        pass
    train_s = time.perf_counter() - t0
    model = trainer.model
    k = brightness(raw, gt)
    n = len(model.net.members)
    subsets = []
    for size in range(1, n + 1):
        for members in itertools.combinations(range(n), size):
            sub = subset_model(model, members)
            score = trainer.validator.score(sub.net)
            out = engine.denoise(sub, raw, axes="YX", device="cpu")
            report = engine.assess(sub, raw, axes="YX", device="cpu", seed=0)
            subsets.append(dict(members=list(members), val_loss=score.loss,
                                val_psnr=score.psnr, est_mse=report.mse,
                                est_psnr=round(report.psnr(RANGE), 3),
                                psnr=round(psnr(gt, out, RANGE), 3),
                                psnr_k=round(psnr(k * gt, out, RANGE), 3)))
    return dict(config=config, capture=capture, preset=preset, train_s=round(train_s, 1),
                best_step=model.best_step, k=round(k, 4), subsets=subsets)


def _pick(rule: str, subsets: list[dict]) -> dict:
    """The subset a self-supervised ``rule`` picks (never looks at ``psnr``)."""
    full = max(subsets, key=lambda s: len(s["members"]))
    singles = sorted((s for s in subsets if len(s["members"]) == 1), key=lambda s: s["val_loss"])
    if rule == "all":
        return full
    if rule == "min val_loss":
        return min(subsets, key=lambda s: s["val_loss"])
    if rule == "min est_mse":
        return min(subsets, key=lambda s: s["est_mse"])
    if rule.startswith("best-k"):  # the mean of the k members of lowest own loss, k by `key`
        key = rule.split(" by ")[1]
        order = [s["members"][0] for s in singles]
        nested = [next(s for s in subsets if sorted(s["members"]) == sorted(order[:i]))
                  for i in range(1, len(order) + 1)]
        return min(nested, key=lambda s: s[key])
    if rule == "member 0":
        return next(s for s in subsets if s["members"] == [0])
    raise ValueError(rule)


RULES = ("all", "member 0", "min val_loss", "min est_mse", "best-k by val_loss",
         "best-k by est_mse")


def rules(path: Path, baseline_log: Path | None, baseline: str) -> str:
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    keep = distinct_captures((r["config"], r["capture"]) for r in runs)
    runs = [r for r in runs if (r["config"], r["capture"]) in keep]
    fast = {}
    if baseline_log is not None:
        for line in baseline_log.read_text().splitlines():
            r = json.loads(line)
            if r.get("label") == baseline:
                fast[(r["config"], r["capture"])] = (r["tta8_psnr"], r["tta8_psnr_k"])
    lines = [f"{len(runs)} captures; PSNR in dB, plain / at the capture's brightness", "",
             "| rule | mean PSNR | vs all | higher than all on | vs fast | under fast on | "
             "lowest vs fast |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for rule in RULES:
        picked = [_pick(rule, r["subsets"]) for r in runs]
        alls = [_pick("all", r["subsets"]) for r in runs]
        cells = {"mean": [], "all": [], "higher": [], "fast": [], "under": [], "low": []}
        for key in ("psnr", "psnr_k"):
            d_all = [p[key] - a[key] for p, a in zip(picked, alls, strict=True)]
            cells["mean"].append(f"{np.mean([p[key] for p in picked]):.3f}")
            cells["all"].append(f"{np.mean(d_all):+.3f}")
            cells["higher"].append(str(sum(d > 0.005 for d in d_all)))
            d = [p[key] - fast[(r["config"], r["capture"])][key == "psnr_k"]
                 for p, r in zip(picked, runs, strict=True) if (r["config"], r["capture"]) in fast]
            cells["fast"].append(f"{np.mean(d):+.3f}" if d else "")
            cells["under"].append(str(sum(x < -0.005 for x in d)) if d else "")
            cells["low"].append(f"{min(d):+.2f}" if d else "")
        lines.append("| " + " | ".join([rule] + [" / ".join(v) for v in cells.values()]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = capture_parser("realnoise_members", __doc__, configs=["Confocal_BPAE_G"],
                            captures=[1, 2], preset="balanced",
                            example="steps=40 (a quick check)")
    parser.add_argument("--rules", type=Path, metavar="LOG",
                        help="train nothing: score selection rules on this log's runs")
    parser.add_argument("--baseline-log", type=Path, default=None)
    parser.add_argument("--baseline", default="prior")
    args = parser.parse_args(argv)
    if args.rules:
        print(rules(args.rules, args.baseline_log, args.baseline))
        return 0
    overrides = set_overrides(args)
    for config in args.configs:
        for capture in args.captures:
            row = run(config, capture, args.preset, overrides)
            log_row(row, args.log)
            best = max(row["subsets"], key=lambda s: s["psnr"])
            log(f"{config}_{capture}: all {row['subsets'][-1]['psnr']:.2f} dB, best subset "
                f"{best['members']} {best['psnr']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
