"""Which weights an ensemble should keep, measured on the FMD captures used for development.

::

    python -m benchmarks.ensemble_selection --log runs.jsonl    # 17 captures, ~1 h in one process
    python -m benchmarks.ensemble_selection --tables runs.jsonl

Trains the ``balanced`` preset (four ``fast`` networks from four priors, averaged) on each
development capture alone, as :mod:`benchmarks.realnoise_levers` does (``gr2r``, seed 0, one
torch thread), and at each validation keeps a copy of every member's live weights, its own
validation loss (the run's :class:`~napari_gr2r.engine.training.validation.Validator` on that
member alone) and each member's and the mean's PSNR against the 50-frame ground truth
(benchmark code: the engine never sees the ground truth). After the run it scores, on the same
run, the weights each rule would keep:

- ``kept``: what the engine keeps (the step whose validation loss of the members' mean is lowest);
- ``per_member``: each member at its own lowest validation loss;
- ``last``: the weights at the end of the run;
- ``swa4`` / ``swa7``: each member's weights averaged over its last 4 / 7 validations.

Every rule is scored on one training run, so the differences are those of the rule alone. One
capture takes about 3.5 min on one thread; two processes on disjoint ``--configs`` halve the
wall time.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

from .common import psnr
from .realnoise import CONFIGS, RANGE, brightness
from .realnoise_levers import distinct_captures, trainer_for

RULES = ("per_member", "last", "swa4", "swa7")


def _average(states: list[dict]) -> dict:
    return {k: sum(s[k].float() for s in states) / len(states) for k in states[0]}


def run(config: str, capture: int) -> dict:
    """One capture: the PSNR of the weights each rule keeps, and the validation trace."""
    from napari_gr2r import engine

    trainer, raw, gt = trainer_for(config, capture, {}, preset="balanced")

    def score(states: list[dict]) -> float:
        """PSNR of the mean of as many members as ``states`` (one: that member alone)."""
        model = copy.deepcopy(trainer.model)
        model.net.members = model.net.members[:len(states)]
        for member, state in zip(model.net.members, states):
            member.load_state_dict(state)
        model.net.eval()
        return round(psnr(gt, engine.denoise(model, raw, axes="YX", device="cpu"), RANGE), 3)

    trace, t0 = [], time.perf_counter()
    for event in trainer.iter_fit():
        if isinstance(event, engine.TrainingProgress) and event.validated:
            members = trainer.net.members
            states = [copy.deepcopy(m.state_dict()) for m in members]
            losses = [trainer.validator.score(m).loss for m in members]
            trainer.net.train()  # score() leaves a network in evaluation mode
            trace.append(dict(step=event.step, val=event.val_loss, member_val=losses,
                              member_psnr=[score([s]) for s in states],
                              mean_psnr=score(states), states=states))
    model = trainer.model
    kept = round(psnr(gt, engine.denoise(model, raw, axes="YX", device="cpu"), RANGE), 3)
    count = len(trace[0]["states"])  # members
    best = [min(trace, key=lambda t, i=i: t["member_val"][i]) for i in range(count)]
    row = dict(
        config=config, capture=capture, k=round(brightness(raw, gt), 4),
        best_step=model.best_step, kept_psnr=kept,
        per_member_steps=[b["step"] for b in best],
        per_member_psnr=score([b["states"][i] for i, b in enumerate(best)]),
        last_psnr=trace[-1]["mean_psnr"],
        swa4_psnr=score([_average([t["states"][i] for t in trace[-4:]])
                         for i in range(count)]),
        swa7_psnr=score([_average([t["states"][i] for t in trace[-7:]])
                         for i in range(count)]),
        s=round(time.perf_counter() - t0, 1),
        trace=[{key: v for key, v in t.items() if key != "states"} for t in trace])
    return row


def tables(rows: list[dict]) -> str:
    """Markdown: each rule against ``kept`` over the captures, then per capture."""
    lines = ["| rule | captures | mean vs kept (dB) | higher on | lowest | highest |",
             "| --- | --- | --- | --- | --- | --- |"]
    for rule in RULES:
        d = [r[f"{rule}_psnr"] - r["kept_psnr"] for r in rows]
        lines.append(f"| `{rule}` | {len(d)} | {statistics.mean(d):+.3f} | "
                     f"{sum(x > 0 for x in d)} | {min(d):+.2f} | {max(d):+.2f} |")
    lines += ["", "| capture | kept (step) | " + " | ".join(f"`{r}`" for r in RULES)
              + " | members' own best steps |",
              "| --- | --- | " + " | ".join("---" for _ in RULES) + " | --- |"]
    for r in sorted(rows, key=lambda r: (r["config"], r["capture"])):
        cells = [f"{r[f'{rule}_psnr']:.2f} ({r[f'{rule}_psnr'] - r['kept_psnr']:+.2f})"
                 for rule in RULES]
        lines.append(f"| {r['config']}_{r['capture']} | {r['kept_psnr']:.2f} ({r['best_step']}) | "
                     + " | ".join(cells) + f" | {', '.join(map(str, r['per_member_steps']))} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--captures", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--log", type=Path, help="append a line of JSON per capture here")
    parser.add_argument("--tables", type=Path, metavar="LOG",
                        help="print the tables of a log and stop")
    args = parser.parse_args(argv)
    if args.tables:
        print(tables([json.loads(line) for line in args.tables.read_text().splitlines()]))
        return 0
    keys = sorted(distinct_captures([(c, n) for c in args.configs for n in args.captures]))
    rows = []
    for config, capture in keys:
        row = run(config, capture)
        rows.append(row)
        print(f"{config}_{capture}: kept {row['kept_psnr']} (step {row['best_step']}), "
              + ", ".join(f"{rule} {row[f'{rule}_psnr']}" for rule in RULES), flush=True)
        if args.log:
            with args.log.open("a") as f:
                f.write(json.dumps(row) + "\n")
    print(tables(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
