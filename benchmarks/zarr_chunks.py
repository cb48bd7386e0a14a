"""Training from a zarr store of tiny chunks: 1x1 chunks against the same data rechunked.

One noisy float32 image of ``--size``² pixels is written twice into zarr stores on disk: with
1x1 chunks (one file per pixel, as some acquisition software writes) and with 256x256 chunks
(or the whole image when smaller). :func:`napari_gr2r.engine.train` then trains the same small
network (the ``fast`` preset at width 16, depth 2, patches of 32, ``--steps`` steps, one torch
thread, seed 0) on each, alternating ``--repeats`` times so that the shared machine's load
falls on both alike; the median times and their ratio are reported. Two more figures say where
the time goes: the chunk reads of one training run (a store wrapper counts them; every chunk
read once is the least possible) and the time to read the 1x1 store once, whole.

Usage::

    PYTHONPATH=src python -m benchmarks.zarr_chunks --size 128 --steps 20 --repeats 3

writes ``zarr_chunks.md`` and ``zarr_chunks.json`` in ``--out`` (``--name`` changes the file
names, e.g. for a run against an older ``src``). ``--smoke`` runs 32² pixels, 2 steps, once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import load

HERE = Path(__file__).resolve().parent


def noisy_image(size: int, seed: int = 0) -> np.ndarray:
    """Smooth blobs with Gaussian noise (the content changes nothing but the look)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    clean = np.full((size, size), 400.0, np.float32)
    for _ in range(max(4, size * size // 2000)):
        cy, cx = rng.uniform(0, size, 2)
        r = rng.uniform(3, 10)
        clean += rng.uniform(100, 400) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    return (clean + rng.normal(0, 40, clean.shape)).astype(np.float32)


def write_store(path: Path, image: np.ndarray, chunks: tuple[int, int]) -> float:
    import zarr

    t0 = time.perf_counter()
    arr = zarr.create_array(str(path), shape=image.shape, chunks=chunks, dtype=image.dtype)
    arr[...] = image
    return time.perf_counter() - t0


def config(steps: int) -> Any:
    from napari_gr2r.engine import TrainConfig

    return TrainConfig.from_preset("fast", width=16, depth=2, patch_size=32, batch_size=8,
                                   steps=steps, seed=0)


def train_seconds(path: Path, steps: int) -> float:
    import zarr

    from napari_gr2r import engine

    arr = zarr.open_array(str(path), mode="r")
    t0 = time.perf_counter()
    engine.train(arr, "YX", config(steps), device="cpu")
    return time.perf_counter() - t0


def chunk_reads(path: Path, steps: int) -> int:
    """How many chunks one training run reads (metadata reads not counted)."""
    import zarr
    from zarr.storage import LocalStore, LoggingStore

    from napari_gr2r import engine

    store = LoggingStore(LocalStore(str(path), read_only=True), log_level="WARNING",
                         log_handler=logging.NullHandler())
    arr = zarr.open_array(store, mode="r")
    before = store.counter["get"]
    engine.train(arr, "YX", config(steps), device="cpu")
    return store.counter["get"] - before


def read_whole_seconds(path: Path) -> float:
    import zarr

    arr = zarr.open_array(str(path), mode="r")
    t0 = time.perf_counter()
    np.asarray(arr[...])
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="32² pixels, 2 steps, once")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--name", default="zarr_chunks")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.steps, args.repeats = 32, 2, 1

    import torch
    import zarr

    import napari_gr2r

    torch.set_num_threads(1)
    big = min(256, args.size)
    record: dict[str, Any] = {
        "size": args.size, "steps": args.steps, "repeats": args.repeats,
        "chunks": {"tiny": [1, 1], "rechunked": [big, big]},
        "source": str(Path(napari_gr2r.__file__).resolve().parent.parent),
        "argv": argv, "cpu_cores": os.cpu_count(), "python": platform.python_version(),
        "torch": torch.__version__, "zarr": zarr.__version__, "load_before": load(),
    }
    with tempfile.TemporaryDirectory(prefix="gr2r-zarr-chunks-") as tmp:
        image = noisy_image(args.size)
        stores = {"tiny": Path(tmp) / "tiny.zarr", "rechunked": Path(tmp) / "rechunked.zarr"}
        record["write_s"] = {
            "tiny": round(write_store(stores["tiny"], image, (1, 1)), 2),
            "rechunked": round(write_store(stores["rechunked"], image, (big, big)), 2),
        }
        train_seconds(stores["rechunked"], 1)  # warm-up: imports, thread pools
        times: dict[str, list[float]] = {"tiny": [], "rechunked": []}
        for _ in range(args.repeats):
            for name in ("tiny", "rechunked"):
                times[name].append(round(train_seconds(stores[name], args.steps), 2))
        record["train_s"] = times
        record["median_s"] = {k: round(statistics.median(v), 2) for k, v in times.items()}
        record["ratio"] = round(record["median_s"]["tiny"] / record["median_s"]["rechunked"], 2)
        record["chunk_reads"] = {k: chunk_reads(p, args.steps) for k, p in stores.items()}
        record["chunks_in_store"] = {"tiny": args.size * args.size,
                                     "rechunked": (-(-args.size // big)) ** 2}
        record["read_whole_tiny_s"] = round(read_whole_seconds(stores["tiny"]), 2)
    record["load_after"] = load()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{args.name}.json").write_text(json.dumps(record, indent=1))
    (out_dir / f"{args.name}.md").write_text(report(record, args.name))
    print(report(record, args.name))
    return record


def report(record: dict[str, Any], name: str = "zarr_chunks") -> str:
    size, steps = record["size"], record["steps"]
    big = record["chunks"]["rechunked"][0]
    command = (f"PYTHONPATH=src python -m benchmarks.zarr_chunks --size {size} --steps {steps} "
               f"--repeats {record['repeats']}" + ("" if name == "zarr_chunks" else
                                                  f" --name {name}"))
    lines = [
        "# Training from a zarr store of 1x1 chunks",
        "",
        f"The same noisy float32 image of {size}² pixels in two zarr stores on disk, trained on "
        f"with `engine.train` (fast preset, width 16, depth 2, patches of 32, {steps} steps, "
        f"CPU, one torch thread, torch {record['torch']}, zarr {record['zarr']}), alternating "
        f"{record['repeats']} time(s). Engine source: `{record['source']}`. Command: "
        f"`{command}`.",
        "",
        "| store | chunks in the store | train (median s) | runs (s) | chunks read by one run |",
        "| --- | --- | --- | --- | --- |",
    ]
    labels = {"tiny": "1x1 chunks", "rechunked": f"{big}x{big} chunks"}
    for key in ("tiny", "rechunked"):
        lines.append(f"| {labels[key]} | {record['chunks_in_store'][key]} | "
                     f"{record['median_s'][key]} | "
                     f"{', '.join(str(t) for t in record['train_s'][key])} | "
                     f"{record['chunk_reads'][key]} |")
    lines += [
        "",
        f"Ratio (1x1 / {big}x{big}): **{record['ratio']}x**. Reading the 1x1 store once, whole: "
        f"{record['read_whole_tiny_s']} s. Writing the stores (not timed above): "
        f"{record['write_s']['tiny']} s and {record['write_s']['rechunked']} s.",
        "",
        f"Load of the shared machine: before `{record['load_before']['uptime']}`; after "
        f"`{record['load_after']['uptime']}`.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
