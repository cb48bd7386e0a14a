"""How far one training step's loss strays from the run's recent steps, on the FMD captures.

::

    python -m benchmarks.loss_spikes --configs WideField_BPAE_R --preset balanced \\
        --set steps=400 seed=2 --until 150

Trains ``gr2r`` on capture 1 (development) of each configuration and records, for every step,
the batch's loss and the norm of its (all-reduced) gradients before the optimiser uses them,
whether the engine's divergence guard let the step update the weights, and prints each run's
largest ratio of a step's loss (and gradient norm) to the median of the
:data:`~napari_gr2r.engine.training.guard.SPIKE_WINDOW` steps before it, with the steps of the
largest ones: what :data:`~napari_gr2r.engine.training.guard.SPIKE` has to separate. One torch
thread; a line of JSON per run goes to ``--log`` with every step.
"""

from __future__ import annotations

import sys

import numpy as np

from .common import log_row
from .realnoise import load
from .realnoise_levers import capture_parser, set_overrides


def run(config: str, capture: int, preset: str, overrides: dict, until: int) -> dict:
    import torch

    from napari_gr2r import engine
    from napari_gr2r.engine.training import guard

    torch.set_num_threads(1)
    raw, _ = load(config, capture)
    cfg = engine.TrainConfig.from_preset(preset, **{"method": "gr2r", "seed": 0,
                                                    "net_dims": "2d", **overrides})
    trainer = engine.Trainer(raw, "YX", cfg, device="cpu")
    steps: list[dict] = []
    sound = guard.DivergenceGuard.step_is_sound

    def record(self, trainer_, loop, at, lr, loss, check_gradients=True):
        norm = sum(float((p.grad.detach().double() ** 2).sum())
                   for p in trainer_.net.parameters() if p.grad is not None) ** 0.5
        taken = sound(self, trainer_, loop, at, lr, loss, check_gradients)
        steps.append(dict(step=at, loss=loss, grad_norm=norm, taken=taken))
        return taken

    guard.DivergenceGuard.step_is_sound = record
    try:
        for event in trainer.iter_fit():
            if isinstance(event, engine.TrainingProgress) and until and event.step >= until:
                break
    finally:
        guard.DivergenceGuard.step_is_sound = sound
    row = dict(config=config, capture=capture, preset=preset, overrides=overrides,
               steps=len(steps), skipped=[s["step"] for s in steps if not s["taken"]])
    for key in ("loss", "grad_norm"):
        values = np.array([s[key] for s in steps])
        w = guard.SPIKE_WINDOW
        ratio = np.array([values[i] / np.median(values[i - w:i]) for i in range(w, len(values))])
        top = np.argsort(ratio)[::-1][:3]
        row[f"{key}_ratio_max"] = round(float(ratio.max()), 2)
        row[f"{key}_ratio_99"] = round(float(np.percentile(ratio, 99)), 2)
        row[f"{key}_top"] = [(steps[w + i]["step"], round(float(ratio[i]), 2)) for i in top]
    row["per_step"] = steps
    return row


def main(argv: list[str] | None = None) -> int:
    parser = capture_parser("loss_spikes", __doc__, configs=["WideField_BPAE_R"], captures=[1],
                            preset="fast", example="steps=400 seed=2")
    parser.add_argument("--until", type=int, default=0, metavar="STEP",
                        help="stop after this step (0: the whole run)")
    args = parser.parse_args(argv)
    overrides = set_overrides(args)
    for config in args.configs:
        for capture in args.captures:
            row = run(config, capture, args.preset, overrides, args.until)
            log_row(row, args.log, {k: v for k, v in row.items() if k != "per_step"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
