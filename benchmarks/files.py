"""Files per minute: one model applied to a folder of images, in this process and on a cluster.

A folder of ``--files`` noisy uint16 TIFFs of ``--size``² pixels is denoised with
:func:`napari_gr2r.engine.denoise_files` into a new folder, three ways, one after another in one
run:

- ``in process, 2 threads``: this process, torch with two intra-op threads (the two cores);
- ``in process, 1 thread``: the same with one thread (for reference);
- ``LocalCluster, 2 workers``: a ``dask.distributed`` ``LocalCluster`` of two single-threaded
  worker processes, one file per task (the cluster's start-up is timed apart).

The network is the ``fast`` preset's U-Net (width 16, depth 2), trained for a few steps on the
first file (training is not timed: only applying the model). Every run writes the same results
(checked against the first run's), so the three do the same work. The machine's load average
is recorded before and after, since on a shared machine other jobs take cores.

Usage::

    PYTHONPATH=src python -m benchmarks.files --files 50 --size 512 --out benchmarks/results

writes ``files.md`` and ``files.json`` in ``--out``. ``--smoke`` runs 4 files of 64² without the
cluster in seconds (``tests/test_benchmarks_smoke.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import load

HERE = Path(__file__).resolve().parent


def make_folder(folder: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    """``n`` noisy uint16 TIFFs: smooth blobs with Poisson-Gaussian noise (content does not
    change the speed, only makes the images look like images)."""
    import tifffile

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    paths = []
    for i in range(n):
        clean = np.full((size, size), 10.0, np.float32)
        for _ in range(max(4, size * size // 4000)):
            cy, cx = rng.uniform(0, size, 2)
            r = rng.uniform(3, 12)
            clean += rng.uniform(20, 60) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        noisy = rng.poisson(clean) + rng.normal(100, 2, clean.shape)
        path = folder / f"field_{i:03d}.tif"
        tifffile.imwrite(path, np.clip(noisy, 0, 65535).astype(np.uint16))
        paths.append(path)
    return paths


def train_model(path: Path, steps: int) -> Any:
    import tifffile

    from napari_gr2r import engine

    config = engine.TrainConfig.from_preset("fast", steps=steps, seed=0)
    return engine.train(tifffile.imread(path), "YX", config, device="cpu")


def run(model: Any, folder: Path, out: Path, client: Any = None) -> dict[str, Any]:
    from napari_gr2r import engine

    t0 = time.perf_counter()
    events = list(engine.denoise_files(model, [folder], out, device="cpu", client=client))
    seconds = time.perf_counter() - t0
    finished = events[-1]
    if finished.failed or finished.done != finished.n_files:
        raise RuntimeError(f"not every file was denoised: {finished}")
    return {"files": finished.done, "seconds": round(seconds, 2),
            "files_per_min": round(60 * finished.done / seconds, 1)}


def _import_engine() -> None:
    import napari_gr2r.engine  # noqa: F401


def same_results(a: Path, b: Path) -> float:
    """The largest difference between the results in two folders."""
    import tifffile

    worst = 0.0
    for path in sorted(a.iterdir()):
        worst = max(worst, float(np.abs(tifffile.imread(path) - tifffile.imread(b / path.name)).max()))
    return worst


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--no-cluster", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="4 files of 64², no cluster")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    if args.smoke:
        args.files, args.size, args.train_steps, args.no_cluster = 4, 64, 2, True

    import torch

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "files": args.files, "size": args.size, "network": "fast preset (width 16, depth 2)",
        "cpu_cores": os.cpu_count(), "python": platform.python_version(),
        "torch": torch.__version__, "load_before": load(), "runs": {},
    }
    with tempfile.TemporaryDirectory(prefix="gr2r-files-") as tmp:
        tmp_path = Path(tmp)
        paths = make_folder(tmp_path / "raw", args.files, args.size)
        torch.set_num_threads(1)
        model = train_model(paths[0], args.train_steps)
        runs = record["runs"]
        run(model, paths[0], tmp_path / "warm-up")  # first calls: thread pools, allocations
        torch.set_num_threads(2)
        runs["in process, 2 threads"] = run(model, tmp_path / "raw", tmp_path / "a")
        torch.set_num_threads(1)
        runs["in process, 1 thread"] = run(model, tmp_path / "raw", tmp_path / "b")
        if not args.no_cluster:
            from distributed import Client, LocalCluster

            t0 = time.perf_counter()
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster, Client(cluster) as client:
                client.run(_import_engine)  # workers import torch before the clock starts
                started = time.perf_counter() - t0
                result = run(model, tmp_path / "raw", tmp_path / "c", client=client)
            result["cluster_start_s"] = round(started, 2)
            result["files_per_min_with_start"] = round(
                60 * result["files"] / (result["seconds"] + started), 1)
            runs["LocalCluster, 2 workers"] = result
            record["max_difference_cluster"] = same_results(tmp_path / "a", tmp_path / "c")
        record["max_difference_threads"] = same_results(tmp_path / "a", tmp_path / "b")
    record["load_after"] = load()
    (out_dir / "files.json").write_text(json.dumps(record, indent=1))
    (out_dir / "files.md").write_text(report(record))
    print(report(record))
    return record


def report(record: dict[str, Any]) -> str:
    lines = [
        "# Files per minute",
        "",
        f"{record['files']} uint16 TIFFs of {record['size']}² pixels denoised into a folder with "
        f"`engine.denoise_files` (the {record['network']}, CPU, torch {record['torch']}, "
        f"{record['cpu_cores']} cores). Command: `PYTHONPATH=src python -m benchmarks.files "
        f"--files {record['files']} --size {record['size']}`.",
        "",
        "| run | seconds | files per minute |",
        "| --- | --- | --- |",
    ]
    for name, run_ in record["runs"].items():
        extra = ""
        if "cluster_start_s" in run_:
            extra = (f" ({run_['files_per_min_with_start']} counting the cluster's "
                     f"{run_['cluster_start_s']} s start)")
        lines.append(f"| {name} | {run_['seconds']} | {run_['files_per_min']}{extra} |")
    lines += [
        "",
        "Results of every run agree to "
        f"{max(record.get('max_difference_threads', 0), record.get('max_difference_cluster', 0)):.2g} "
        "(largest difference, intensity units).",
        "",
        f"Load of the shared machine: before `{record['load_before']['uptime']}`; after "
        f"`{record['load_after']['uptime']}`.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
