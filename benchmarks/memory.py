"""Peak memory and throughput of out-of-core denoising against the input size.

Each run is a fresh process so that its peak resident size (``ru_maxrss``) is its own:

- ``in-memory``: ``engine.denoise(model, zarr_array)``, the result a numpy array;
- ``out-of-core``: ``engine.denoise_to_zarr(model, path, "YX", out.zarr)`` in one process;
- ``cluster``: the same over a ``dask.distributed`` ``LocalCluster`` of two single-threaded
  worker processes (the peak of the client and of each worker is reported).

The network is an untrained U-Net of width 4 and depth 2, one view per tile (``tta=1``; the
presets average 8 flips and turns, 8 passes) (the throughput of the machinery with the cheapest
network; a trained default network costs about 30x more per pixel, and
memory per block grows with its width). Inputs are random uint16 YX images in zarr stores
with 512x512 chunks.

Usage::

    PYTHONPATH=src python benchmarks/memory.py --sizes 16 64 256 --in-memory-max 64 --threads 1

writes ``benchmarks/results/memory.md``, ``memory.json`` and ``memory.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MB = 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def make_model(width: int = 4, depth: int = 2):
    """The same untrained network in every process (seeded)."""
    import torch

    from napari_gr2r.engine import GR2RModel, TrainConfig
    from napari_gr2r.engine.data.normalization import Normalization
    from napari_gr2r.engine.model.networks import build_network
    from napari_gr2r.engine.noise.level import NoiseLevel

    torch.manual_seed(0)
    return GR2RModel(
        net=build_network(2, 1, width, depth).eval(),
        config=TrainConfig(width=width, depth=depth, tta=1),  # one view per tile, as measured
        axes="YX", channels=1, dims=2, normalization=Normalization([100.0], [1100.0]),
        noise_level=NoiseLevel([0.0], [1e-3], [1e-3]),
    )


def make_input(path: Path, size_mb: int) -> tuple[int, int]:
    """A random uint16 YX image of ``size_mb`` MB, written band by band."""
    import numpy as np
    import zarr

    pixels = size_mb * MB // 2
    width = 2 ** int(np.ceil(np.log2(np.sqrt(pixels * 2))))
    height = pixels // width
    if path.exists():
        return height, width
    arr = zarr.create_array(store=str(path), shape=(height, width), chunks=(512, 512),
                            dtype="uint16")
    rng = np.random.default_rng(size_mb)
    for y in range(0, height, 512):
        rows = min(512, height - y)
        arr[y:y + rows] = rng.poisson(300, (rows, width)).astype(np.uint16) + 100
    return height, width


# --------------------------------------------------------------------------------------------
# one measured run (in a subprocess)


def run_one(mode: str, source: str, out: str, threads: int) -> dict:
    import shutil

    import torch
    import zarr

    from napari_gr2r import engine

    torch.set_num_threads(threads)
    model = make_model()
    baseline = _peak_rss_mb()
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    record: dict = {"mode": mode}
    if mode == "in-memory":
        result = engine.denoise(model, zarr.open_array(source, mode="r"), axes="YX")
        pixels = result.size
    elif mode == "out-of-core":
        result = engine.denoise_to_zarr(model, source, "YX", out)
        pixels = int(result.size)
    elif mode == "cluster":
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            started = time.perf_counter()
            result = engine.denoise_to_zarr(model, source, "YX", out, client=client)
            record["cluster_start_s"] = started - start
            workers = client.run(_peak_rss_mb)
            record["worker_peak_rss_mb"] = sorted(workers.values())
        pixels = int(result.size)
    else:
        raise ValueError(mode)
    record.update(seconds=time.perf_counter() - start, pixels=pixels,
                  peak_rss_mb=_peak_rss_mb(), baseline_rss_mb=baseline)
    return record


# --------------------------------------------------------------------------------------------
# the benchmark


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 256],
                        help="input sizes in MB of uint16")
    parser.add_argument("--in-memory-max", type=int, default=64,
                        help="largest size also run with the in-memory denoise")
    parser.add_argument("--modes", nargs="+", default=["in-memory", "out-of-core", "cluster"])
    parser.add_argument("--workdir", type=Path, default=None,
                        help="folder for the inputs and outputs (default: a temporary one)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the in-process runs (cluster workers use one)")
    parser.add_argument("--report-only", action="store_true",
                        help="redraw the table and plot from the results' memory.json")
    parser.add_argument("--run-one", nargs=3, metavar=("MODE", "SOURCE", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_one:
        print(json.dumps(run_one(*args.run_one, threads=args.threads)))
        return

    if args.report_only:
        write_report(json.loads((args.results / "memory.json").read_text()), args.results,
                     args.threads)
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gr2r-memory-"))
    workdir.mkdir(parents=True, exist_ok=True)
    records = []
    for size in args.sizes:
        source = workdir / f"in-{size}MB.zarr"
        height, width = make_input(source, size)
        for mode in args.modes:
            if mode == "in-memory" and size > args.in_memory_max:
                continue
            out = workdir / f"out-{size}MB-{mode}.zarr"
            proc = subprocess.run(
                [sys.executable, __file__, "--run-one", mode, str(source), str(out),
                 "--threads", str(args.threads)],
                capture_output=True, text=True, check=False, env={**os.environ},
            )
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{mode} at {size} MB failed")
            record = json.loads(proc.stdout.strip().splitlines()[-1])
            record.update(size_mb=size, shape=[height, width])
            records.append(record)
            print(_row(record), flush=True)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "memory.json").write_text(json.dumps(records, indent=1))
    write_report(records, args.results, args.threads)


def _row(r: dict) -> str:
    workers = r.get("worker_peak_rss_mb")
    worker_text = " / ".join(f"{w:.0f}" for w in workers) if workers else "-"
    return (f"| {r['mode']} | {r['size_mb']} | {r['shape'][0]}x{r['shape'][1]} | "
            f"{r['peak_rss_mb']:.0f} | {r['peak_rss_mb'] - r['baseline_rss_mb']:.0f} | "
            f"{worker_text} | {r['seconds']:.1f} | {r['pixels'] / r['seconds'] / 1e6:.2f} |")


def write_report(records: list[dict], results: Path, threads: int = 1) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_mem, ax_speed) = plt.subplots(1, 2, figsize=(10, 4))
    for mode, style in (("in-memory", "o-"), ("out-of-core", "s-"), ("cluster", "^-")):
        rows = [r for r in records if r["mode"] == mode]
        if not rows:
            continue
        sizes = [r["size_mb"] for r in rows]
        label = "cluster (client)" if mode == "cluster" else mode
        ax_mem.plot(sizes, [r["peak_rss_mb"] for r in rows], style, label=label)
        if mode == "cluster":
            ax_mem.plot(sizes, [max(r["worker_peak_rss_mb"]) for r in rows], "^--",
                        label="cluster (largest worker)")
        ax_speed.plot(sizes, [r["pixels"] / r["seconds"] / 1e6 for r in rows], style, label=mode)
    for ax in (ax_mem, ax_speed):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("input size (MB of uint16)")
        ax.grid(alpha=0.3)
        ax.legend()
    ax_mem.set_ylabel("peak resident memory (MB)")
    ax_speed.set_ylabel("throughput (Mpx/s)")
    fig.suptitle("Denoising into zarr: memory stays flat as the input grows")
    fig.tight_layout()
    fig.savefig(results / "memory.png", dpi=120)

    import platform

    import torch

    lines = [
        "# Out-of-core denoising: memory and throughput against input size",
        "",
        f"Written by `benchmarks/memory.py` on {time.strftime('%Y-%m-%d')}: "
        f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"torch {torch.__version__} (CPU), {threads} torch thread(s) in process and one per "
        "worker (two single-threaded worker processes), untrained U-Net width 4 depth 2, "
        "random uint16 YX "
        "images in zarr stores with 512x512 chunks. Each row is a fresh process; peak RSS "
        "is `ru_maxrss` (of the client process for `cluster`, whose two worker processes "
        "are listed separately); growth is peak RSS minus the RSS after loading the model.",
        "",
        "![memory and throughput](memory.png)",
        "",
        "| mode | input (MB) | shape | peak RSS (MB) | growth over load (MB) | workers' peak RSS (MB) "
        "| time (s) | Mpx/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *(_row(r) for r in records),
    ]
    (results / "memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
