"""napari showing a large result: one resolution level against lower-resolution levels beside it.

A float32 result of ``--side``² pixels (random values, 512² chunks, the pixel size of a
microscope) is written as :func:`napari_gr2r.engine.denoise_to_zarr` writes one: its full
resolution, then (in a copy) the lower-resolution levels of
:mod:`napari_gr2r.engine.io.pyramid`, whose writing is timed. Each store is then opened in
napari (a separate process under the display it is given, a 1280 x 1000 window) as the widget
opens results, and what is timed is napari's first view of the whole plane (``add_image`` until
the canvas is drawn) and then a view zoomed in 8 times; the peak resident memory of the process
is read from ``/usr/bin/time``. The two stores alternate ``--repeats`` times; medians and their
ratio are reported.

Usage (needs a display: ``xvfb-run -a`` on a machine without one)::

    xvfb-run -a -s "-screen 0 1280x1024x24" python -m benchmarks.pyramid --side 12000 --repeats 2

writes ``pyramid.md`` and ``pyramid.json`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

VIEW = """
import sys, time
import dask.array as da
import napari
from napari_gr2r.engine import open_result
from napari_gr2r.engine.io.pyramid import result_levels
viewer = napari.Viewer(show=True)
viewer.window._qt_window.resize(1280, 1000)
levels = [da.from_zarr(a) for a in result_levels(open_result(sys.argv[1]))]
t = time.perf_counter()
viewer.add_image(levels if len(levels) > 1 else levels[0], contrast_limits=(400, 500))
viewer.screenshot(canvas_only=True)
first = time.perf_counter() - t
t = time.perf_counter()
viewer.camera.zoom *= 8
viewer.screenshot(canvas_only=True)
print("VIEW", len(levels), first, time.perf_counter() - t)
viewer.close()
"""


def write_result(path: Path, side: int) -> None:
    from napari_gr2r.engine.io import omezarr

    arr = omezarr.create_result(str(path), "YX", (side, side), (512, 512))
    rng = np.random.default_rng(0)
    for y in range(0, side, 512):
        arr[y:y + 512] = rng.random((min(512, side - y), side), np.float32) * 100 + 400
    omezarr.tag_result(arr, "YX", {"scale": [0.2, 0.2], "unit": "µm"})


def view(path: Path) -> dict[str, float]:
    """One napari process showing ``path``: its times (s) and peak memory (MB)."""
    run = subprocess.run(["/usr/bin/time", "-f", "RSS %M", sys.executable, "-c", VIEW,
                          str(path)], capture_output=True, text=True, check=True)
    _, levels, first, zoom = re.search(r"VIEW .*", run.stdout).group(0).split()
    rss = float(re.search(r"RSS (\d+)", run.stderr).group(1)) / 1024
    return {"levels": int(levels), "first": float(first), "zoom": float(zoom), "rss_mb": rss}


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=HERE, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=12000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    from napari_gr2r.engine.io.omezarr import open_result
    from napari_gr2r.engine.io.pyramid import write_levels

    with tempfile.TemporaryDirectory() as tmp:
        flat, levels = Path(tmp) / "flat.zarr", Path(tmp) / "levels.zarr"
        write_result(flat, args.side)
        shutil.copytree(flat, levels)
        t = time.perf_counter()
        count = write_levels(open_result(str(levels), mode="r+"), "YX")
        seconds = time.perf_counter() - t
        runs: dict[str, list[dict[str, float]]] = {"one level": [], "levels": []}
        for _ in range(args.repeats):
            runs["one level"].append(view(flat))
            runs["levels"].append(view(levels))
    med = {name: {key: statistics.median(r[key] for r in rows) for key in rows[0]}
           for name, rows in runs.items()}
    record = {"side": args.side, "levels": count, "write_levels_s": seconds, "runs": runs,
              "medians": med, "machine": platform.platform()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pyramid.json").write_text(json.dumps(record, indent=1))
    lines = [f"# napari showing a {args.side}² float32 result: one level against "
             f"{count} lower-resolution levels beside it", "",
             "    xvfb-run -a -s \"-screen 0 1280x1024x24\" python -m benchmarks.pyramid "
             f"--side {args.side} --repeats {args.repeats}", "",
             f"Engine {_commit()}, {platform.platform()}, {os.cpu_count()} cores. Levels "
             f"written in {seconds:.1f} s. Medians of {args.repeats} runs, alternating; each run "
             "a napari process of its own.",
             "", "| store | first view (s) | zoomed in 8x (s) | peak memory (MB) |",
             "| --- | --- | --- | --- |"]
    for name, m in med.items():
        lines.append(f"| {name} | {m['first']:.2f} | {m['zoom']:.2f} | {m['rss_mb']:.0f} |")
    ratio = med["one level"]["first"] / med["levels"]["first"]
    lines += ["", f"First view: {ratio:.1f} times faster with the levels."]
    (args.out / "pyramid.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
