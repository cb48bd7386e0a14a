"""What each training preset costs, counted rather than timed: ``python -m benchmarks.preset_cost``.

For each preset and network dimensionality: the parameters, and the floating-point operations
of one forward and backward pass of the network over a batch of patches
(``torch.utils.flop_counter`` on PyTorch's meta device: nothing is computed, so the count is
the same on any machine and takes a second). A training step makes a few such passes (two
without the γ term, three with it), so the ratios to the ``fast`` preset say what a run of each
preset costs on the same device (``fast``'s own time: README.md). The figures
in ``TrainConfig.from_preset``'s docstring come from it.

``--checkpoint-writes`` also times writing a training checkpoint of each preset's 2D network
(weights, best weights, optimiser state, run state; fsync'ed), the best of three.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from napari_gr2r import engine
from napari_gr2r.engine.model.networks import build_network, count_parameters


def step_cost(preset: str, dims: int) -> tuple[int, float, int]:
    """``(parameters, FLOPs of one training step of the gr2r method, steps)``.

    A step is what :class:`~napari_gr2r.engine.training.losses.GR2RLoss` computes: a forward
    pass of the batch without gradient (``f(y)``), then a forward and backward pass of one
    copy of the batch per term of the loss (the recorrupted input, and the pseudo-supervised
    input where ``gamma > 0``). An ensemble's step is every member's, on ``batch_size``
    patches each."""
    cfg = engine.TrainConfig.from_preset(preset)
    copies = 1 + (cfg.resolved_gamma > 0) + (cfg.resolved_lambda_g > 0)
    with torch.device("meta"):
        net = build_network(dims, 1, cfg.width, cfg.depth, cfg.residual, members=cfg.members)
        depth = (cfg.patch_size_z,) if dims == 3 else ()
        batch = torch.randn(cfg.batch_size * cfg.members, 1, *depth, cfg.patch_size,
                            cfg.patch_size)
        with FlopCounterMode(display=False) as counter:
            with torch.no_grad():
                net(batch)
            net(torch.cat([batch] * copies)).square().mean().backward()
    return count_parameters(net), float(counter.get_total_flops()), cfg.steps


def table() -> list[str]:
    _, base, base_steps = step_cost("fast", 2)
    rows = ["| preset | network | parameters | GFLOP per step | per step vs fast | run vs fast |",
            "| --- | --- | --- | --- | --- | --- |"]
    for preset, dims in (("fast", 2), ("balanced", 2), ("quality", 2), ("quality", 3)):
        params, flops, steps = step_cost(preset, dims)
        rows.append(f"| {preset} | {dims}D | {params:,} | {flops / 1e9:.1f} | "
                    f"{flops / base:.1f}x | {flops * steps / (base * base_steps):.0f}x |")
    return rows


def checkpoint_writes() -> list[str]:
    """Size and time of writing a checkpoint of each preset's 2D network (best of three)."""
    from napari_gr2r.engine.training.resume import RunState, write_checkpoint

    image = np.random.default_rng(0).normal(100, 20, (96, 96)).astype(np.float32)
    rows = []
    for preset in ("fast", "balanced", "quality"):
        config = engine.TrainConfig.from_preset(preset, steps=2, val_fraction=0, patch_size=32,
                                                net_dims="2d")
        model = engine.train(image, "YX", config, device="cpu")  # the optimiser has its state
        state = RunState.capture(model.net, 0, 100, np.random.default_rng(0), torch.Generator(), 0)
        best = {k: v.clone() for k, v in model.net.state_dict().items()}
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "run.gr2r.pt")
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                write_checkpoint(model, path, best, state)
                times.append(time.perf_counter() - t0)
            rows.append(f"{preset}: checkpoint {os.path.getsize(path) / 1e6:.1f} MB, written in "
                        f"{min(times) * 1000:.0f} ms")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint-writes", action="store_true",
                        help="also time writing a checkpoint of each preset")
    args = parser.parse_args()
    print("\n".join(table()))
    if args.checkpoint_writes:
        print("\n".join(checkpoint_writes()))
