"""Speed: training throughput, inference Mpx/s, peak memory, and how close to the CPU's peak.

::

    python -m benchmarks.speed --out benchmarks/results          # a few minutes
    python -m benchmarks.speed --smoke --out /tmp/speed-smoke      # seconds

Each measurement runs in its own Python process (``--measure NAME``), so its peak resident
memory is its own. Our numbers come from the engine's public API (``Trainer``, ``denoise``);
CAREamics' from its ``CAREamist`` (skipped when it is not installed). Both run with the same
torch, the same number of threads, the same patch size and batch, the same image and tile.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .common import log, machine, markdown_table, versions

# --------------------------------------------------------------------------------------------
# network cost


def flops_per_pixel(net: nn.Module, size: int = 256, channels: int = 1) -> float:
    """Floating-point operations (2 per multiply-add) of one forward pass, per input pixel.

    Counted by torch's FLOP counter, which sees convolutions and matrix products (however
    they are called) and leaves out activations, pooling and up-sampling (a few per pixel).
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net.eval()(torch.zeros(1, channels, size, size))
    return counter.get_total_flops() / (size * size)


def peak_flops(seconds: float = 2.0) -> dict[str, float]:
    """Measured FLOP/s of a large matrix product and of a plain 3x3 convolution (float32)."""
    out = {}
    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b)
        reps += 1
    out["matmul"] = 2 * n**3 * reps / (time.perf_counter() - t0)
    conv = nn.Conv2d(64, 64, 3, padding=1).eval()
    x = torch.randn(1, 64, 128, 128)
    with torch.inference_mode():
        conv(x)
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            conv(x)
            reps += 1
    out["conv3x3"] = 2 * 64 * 64 * 9 * 128 * 128 * reps / (time.perf_counter() - t0)
    return out


# --------------------------------------------------------------------------------------------
# measurements (each in its own process)


def _image(size: int, seed: int = 0) -> np.ndarray:
    """A smooth random image plus Gaussian noise (the content does not matter for speed)."""
    rng = np.random.default_rng(seed)
    small = rng.random((size // 16 + 2, size // 16 + 2))
    img = np.kron(small, np.ones((16, 16)))[:size, :size] * 200
    return (img + rng.normal(0, 25, img.shape)).astype(np.float32)


def _ours_config(width: int, depth: int, patch: int, batch: int, steps: int, method: str,
                 ) -> Any:
    from napari_gr2r import engine

    return engine.TrainConfig.from_preset(
        "fast", method=method, width=width, depth=depth, patch_size=patch, batch_size=batch,
        steps=steps, seed=0, net_dims="2d", event_every=1, val_every=10_000, val_fraction=0.1)


def measure_train_ours(p: dict[str, Any]) -> dict[str, Any]:
    """Patches per second of the engine's trainer, after ``warmup`` steps."""
    from napari_gr2r import engine

    image = _image(p["image"])
    method = p["method"]
    cfg = _ours_config(p["width"], p["depth"], p["patch"], p["batch"],
                       p["warmup"] + p["steps"], method)
    target = image if method == "n2c" else None
    trainer = engine.Trainer(image, "YX", cfg, target=target, device="cpu")
    t_warm = t_end = None
    for event in trainer.iter_fit():
        if isinstance(event, engine.TrainingProgress):
            if event.step == p["warmup"]:
                t_warm = time.perf_counter()
            t_end = time.perf_counter()
    seconds = t_end - t_warm
    rate = p["batch"] * p["steps"] / seconds
    return dict(patches_per_s=rate, s_per_step=seconds / p["steps"],
                flops_per_px=flops_per_pixel(trainer.net))


class _BatchClock:
    """A Lightning callback that notes the time at the end of each training batch."""

    def __init__(self) -> None:
        from lightning.pytorch import Callback

        clock = self

        class _CB(Callback):
            def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
                clock.times.append(time.perf_counter())

        self.times: list[float] = []
        self.callback = _CB()


def _careamist(image: np.ndarray, patch: int, batch: int, epochs: int, callbacks: list) -> Any:
    from . import baselines

    baselines.import_careamics()
    import tempfile

    from careamics import CAREamist

    grid = (image.shape[0] // patch) * (image.shape[1] // patch)
    config = baselines.n2v_config(epochs, patch, batch, n_val=max(1, min(8, grid // 4)))
    careamist = CAREamist(config, work_dir=tempfile.mkdtemp(prefix="n2v_speed_"),
                          callbacks=callbacks, enable_progress_bar=False)
    careamist.train(train_data=image)
    return careamist


def _careamics_net(careamist: Any) -> nn.Module:
    return careamist.model.model


def measure_train_careamics(p: dict[str, Any]) -> dict[str, Any]:
    """Patches per second of CAREamics' N2V training (batches after the warm-up ones)."""
    image = _image(p["image"])
    clock = _BatchClock()
    careamist = _careamist(image, p["patch"], p["batch"], p["epochs"], [clock.callback])
    times = clock.times
    w = min(p["warmup"], len(times) - 2)
    steps = len(times) - 1 - w
    seconds = times[-1] - times[w]
    return dict(patches_per_s=p["batch"] * steps / seconds, s_per_step=seconds / steps,
                steps_timed=steps, wall_per_step_with_epochs=None,
                flops_per_px=flops_per_pixel(_careamics_net(careamist)))


def _trained_ours(width: int, depth: int) -> Any:
    from napari_gr2r import engine

    cfg = _ours_config(width, depth, 32, 2, 2, "gr2r")
    return engine.train(_image(64), "YX", cfg, device="cpu")


def measure_infer_ours(p: dict[str, Any]) -> dict[str, Any]:
    from napari_gr2r import engine

    model = _trained_ours(p["width"], p["depth"])
    image = _image(p["image"], seed=1)
    # tile / overlap None: the engine's defaults (what a user gets)
    kwargs = dict(tile=p["tile"], overlap=p["overlap"], batch_size=p["tile_batch"], device="cpu")
    warm = p["tile"] or 256
    engine.denoise(model, image[:warm, :warm], **kwargs)  # warm-up
    t0 = time.perf_counter()
    for _ in range(p["repeats"]):
        engine.denoise(model, image, **kwargs)
    seconds = (time.perf_counter() - t0) / p["repeats"]
    return dict(seconds=seconds, mpx_per_s=image.size / 1e6 / seconds,
                flops_per_px=flops_per_pixel(model.net))


def measure_infer_careamics(p: dict[str, Any]) -> dict[str, Any]:
    from . import baselines

    careamist = _careamist(_image(128), 32, 2, 1, [])
    image = _image(p["image"], seed=1)
    baselines.predict_n2v(careamist, image[:p["tile"], :p["tile"]], tile=p["tile"],
                          overlap=p["overlap"], batch_size=p["tile_batch"])
    t0 = time.perf_counter()
    for _ in range(p["repeats"]):
        baselines.predict_n2v(careamist, image, tile=p["tile"], overlap=p["overlap"],
                              batch_size=p["tile_batch"])
    seconds = (time.perf_counter() - t0) / p["repeats"]
    return dict(seconds=seconds, mpx_per_s=image.size / 1e6 / seconds,
                flops_per_px=flops_per_pixel(_careamics_net(careamist)))


def measure_peak(p: dict[str, Any]) -> dict[str, Any]:
    return {f"{k}_gflops": v / 1e9 for k, v in peak_flops(p["seconds"]).items()}


MEASURES = {
    "train-ours": measure_train_ours,
    "train-careamics": measure_train_careamics,
    "infer-ours": measure_infer_ours,
    "infer-careamics": measure_infer_careamics,
    "peak": measure_peak,
}


def _child(name: str, params: dict[str, Any], threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    result = MEASURES[name](params)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


IN_PROCESS = False
"""Run measurements in this process (quicker; peak RSS is then the whole suite's)."""


def run_measure(name: str, params: dict[str, Any], threads: int, timeout: float = 900,
                ) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; returns its figures or an ``error``."""
    if IN_PROCESS:
        return _child(name, params, threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    root = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, "-m", "benchmarks.speed", "--measure", name,
           "--params", json.dumps(params), "--threads", str(threads)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(error=f"timed out after {timeout:.0f} s")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
            result["process_s"] = round(time.perf_counter() - t0, 1)
            return result
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return dict(error=" / ".join(tail) or f"exit status {proc.returncode}")


# --------------------------------------------------------------------------------------------
# the suite


def suite(smoke: bool, threads: int, with_careamics: bool) -> dict[str, Any]:
    if smoke:
        train = dict(image=96, patch=32, batch=2, warmup=1, steps=2)
        infer = dict(image=96, tile=64, overlap=16, tile_batch=2, repeats=1)
        sizes, batches, peak_s, epochs = [64], [2], 0.2, 2
        nets = [(8, 2)]
    else:
        train = dict(image=512, patch=64, batch=8, warmup=3, steps=12)
        infer = dict(image=1024, tile=256, overlap=48, tile_batch=4, repeats=2)
        sizes, batches, peak_s, epochs = [256, 512, 1024, 2048], [1, 2, 4, 8, 16], 3.0, 3
        nets = [(16, 2), (32, 2)]
    res: dict[str, Any] = dict(threads=threads, train_params=train, infer_params=infer,
                               in_process=IN_PROCESS)
    log("peak FLOP/s")
    res["peak"] = run_measure("peak", dict(seconds=peak_s), threads)
    res["train"] = []
    for width, depth in nets:
        for method in ("gr2r", "n2c"):
            log(f"training throughput, ours, {method}, width {width}")
            r = run_measure("train-ours", dict(train, width=width, depth=depth, method=method),
                            threads)
            res["train"].append(dict(who="ours", method=method, width=width, depth=depth, **r))
    if with_careamics:
        log("training throughput, CAREamics N2V")
        r = run_measure("train-careamics", dict(train, epochs=epochs), threads)
        res["train"].append(dict(who="careamics", method="n2v", width=32, depth=2, **r))
    res["infer"] = []
    for width, depth in nets:
        log(f"inference, ours, width {width}")
        r = run_measure("infer-ours", dict(infer, width=width, depth=depth), threads)
        res["infer"].append(dict(who="ours", width=width, depth=depth, **r))
    width, depth = nets[0]
    log(f"inference, ours, width {width}, the engine's default tiles")
    r = run_measure("infer-ours", dict(infer, width=width, depth=depth, tile=None, overlap=None),
                    threads)
    res["infer"].append(dict(who="ours", width=width, depth=depth, tiling="default", **r))
    if with_careamics:
        log("inference, CAREamics")
        r = run_measure("infer-careamics", infer, threads)
        res["infer"].append(dict(who="careamics", width=32, depth=2, **r))
    res["sizes"] = []
    width, depth = nets[0]
    for size in sizes:
        log(f"inference time, {size}x{size}")
        r = run_measure("infer-ours", dict(infer, image=size, width=width, depth=depth,
                                           repeats=1), threads)
        res["sizes"].append(dict(size=size, **r))
    res["batches"] = []
    for batch in batches:
        log(f"training time, batch {batch}")
        r = run_measure("train-ours", dict(train, batch=batch, width=width, depth=depth,
                                           method="gr2r"), threads)
        res["batches"].append(dict(batch=batch, **r))
    return res


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


# forward-pass equivalents per patch and step: gr2r = 1 pass without gradient + 2 passes
# with backward (each about 3 forward passes' work); n2c, N2V = 1 pass with backward
EVALS = {"gr2r": 1 + 2 * 3, "n2c": 3, "n2v": 3}


def report(res: dict[str, Any], out: Path) -> str:
    peak = res["peak"]
    peak_flops_s = max(peak.get("matmul_gflops", 0), peak.get("conv3x3_gflops", 0)) * 1e9
    lines = ["# Speed", ""]
    where = ("all measurements in one process (peak RSS is the suite's)" if res.get("in_process")
             else "one process per measurement (peak RSS is that process's)")
    lines.append(f"CPU run with {res['threads']} torch thread(s) per process, {where}. The "
                 "machine is shared with other jobs, so figures vary by tens of per cent from run "
                 "to run; the load average is "
                 "in the run details below.\n")
    lines.append("## Measured peak\n")
    lines.append(markdown_table(["kernel", "GFLOP/s"], [
        ["matrix product 1024² (float32)", _fmt(peak.get("matmul_gflops"))],
        ["3×3 convolution 64→64 channels, 128² (float32)", _fmt(peak.get("conv3x3_gflops"))],
    ] if "error" not in peak else [["error", peak["error"]]]))
    t = res["train_params"]
    lines.append(f"## Training throughput ({t['image']}² image, {t['patch']}² patches, batch "
                 f"{t['batch']})\n")
    rows = []
    for r in res["train"]:
        if "error" in r:
            rows.append([r["who"], r["method"], f"{r['width']}/{r['depth']}", r["error"],
                         "", "", "", ""])
            continue
        fwd = r["patches_per_s"] * EVALS[r["method"]] * r["flops_per_px"] * t["patch"] ** 2
        rows.append([r["who"], r["method"], f"{r['width']}/{r['depth']}",
                     _fmt(r["patches_per_s"]), _fmt(r["s_per_step"], 3),
                     _fmt(r["flops_per_px"] / 1e3, 1), _fmt(fwd / 1e9),
                     _fmt(r["peak_rss_mib"], 0)])
    lines.append(markdown_table(
        ["trainer", "objective", "net width/depth", "patches/s", "s/step",
         "net kFLOP/px (forward)", "GFLOP/s done (forward-pass equivalents)",
         "peak RSS (MiB)"], rows))
    lines.append("GFLOP/s done counts a pass with backward as three forward passes: gr2r makes one "
                 "pass without gradient and two with, per patch; n2c and N2V one with.\n")
    i = res["infer_params"]
    lines.append(f"## Inference ({i['image']}² image, {i['tile']}² tiles, overlap "
                 f"{i['overlap']}, {i['tile_batch']} tiles per batch)\n")
    rows = []
    for r in res["infer"]:
        tiles = ("engine default" if r.get("tiling") == "default"
                 else f"{i['tile']}², overlap {i['overlap']}")
        if "error" in r:
            rows.append([r["who"], f"{r['width']}/{r['depth']}", tiles, r["error"], "", "", "",
                         ""])
            continue
        eff = r["flops_per_px"] * r["mpx_per_s"] * 1e6 / peak_flops_s if peak_flops_s else None
        rows.append([r["who"], f"{r['width']}/{r['depth']}", tiles, _fmt(r["mpx_per_s"], 3),
                     _fmt(r["seconds"]), _fmt(r["flops_per_px"] / 1e3, 1),
                     _fmt(100 * eff, 0) if eff is not None else "–", _fmt(r["peak_rss_mib"], 0)])
    lines.append(markdown_table(["predictor", "net width/depth", "tiles", "Mpx/s", "s",
                                 "net kFLOP/px",
                                 "% of measured peak", "peak RSS (MiB)"], rows))
    lines.append("% of measured peak = network FLOPs per pixel × pixels per second / the larger "
                 "measured peak (tile overlap is counted as overhead, not as work). The engine's "
                 "default tiles are 384² with an overlap of twice the receptive radius plus the "
                 "blending seam.\n")
    lines.append("## Inference time against image size (ours, first network)\n")
    rows = [[f"{r['size']}²", _fmt(r.get("seconds"), 3), _fmt(r.get("mpx_per_s"), 3),
             _fmt(r.get("peak_rss_mib"), 0)] if "error" not in r else [f"{r['size']}²",
                                                                      r["error"], "", ""]
            for r in res["sizes"]]
    lines.append(markdown_table(["image", "s", "Mpx/s", "peak RSS (MiB)"], rows))
    lines.append("## Training time against batch size (ours, gr2r, first network)\n")
    rows = [[r["batch"], _fmt(r.get("s_per_step"), 3), _fmt(r.get("patches_per_s")),
             _fmt(r.get("peak_rss_mib"), 0)] if "error" not in r else [r["batch"], r["error"],
                                                                      "", ""]
            for r in res["batches"]]
    lines.append(markdown_table(["batch", "s/step", "patches/s", "peak RSS (MiB)"], rows))
    lines.append("## Run\n")
    lines.append("```\n" + json.dumps(dict(machine=machine(), versions=versions()), indent=1)
                 + "\n```\n")
    content = "\n".join(lines)
    (out / "speed.md").write_text(content)
    (out / "speed.json").write_text(json.dumps(res, indent=1))
    plot(res, out)
    return content


def plot(res: dict[str, Any], out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
    sizes = [r for r in res["sizes"] if "seconds" in r]
    a.plot([r["size"] ** 2 / 1e6 for r in sizes], [r["seconds"] for r in sizes], "o-")
    a.set_xlabel("image size (Mpx)")
    a.set_ylabel("inference time (s)")
    a.grid(alpha=0.3)
    batches = [r for r in res["batches"] if "s_per_step" in r]
    b.plot([r["batch"] for r in batches], [r["s_per_step"] for r in batches], "o-")
    b.set_xlabel("batch size (patches)")
    b.set_ylabel("training time per step (s)")
    b.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "speed.png", dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few steps")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--no-careamics", action="store_true")
    parser.add_argument("--in-process", action="store_true",
                        help="measure in this process (quicker, but one peak RSS for all)")
    parser.add_argument("--measure", choices=list(MEASURES), help=argparse.SUPPRESS)
    parser.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        result = _child(args.measure, json.loads(args.params), args.threads)
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    from . import baselines

    global IN_PROCESS
    IN_PROCESS = args.in_process
    torch.set_num_threads(args.threads)
    with_careamics = not args.no_careamics and baselines.import_careamics() is not None
    if not with_careamics:
        log("CAREamics is not installed (or --no-careamics): ours only")
    args.out.mkdir(parents=True, exist_ok=True)
    res = suite(args.smoke, args.threads, with_careamics)
    print(report(res, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
