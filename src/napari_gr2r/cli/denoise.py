"""``napari-gr2r denoise``: denoise images with a trained model.

One input and an image output (``-o result.tif`` or ``.zarr``) denoise that image, in memory
or block by block into zarr (optionally on a dask cluster). Several inputs, a folder or a
glob pattern, or an output folder, denoise every image into the folder through
:func:`napari_gr2r.engine.denoise_files`: a bar over the files and one per file, results
named after their inputs, files already done skipped, and each file that fails reported in
one line while the others go on (exit status 1 at the end).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..engine.config import PRECISIONS
from ..engine.errors import InputError
from ._common import (
    BAR_DELAY_S,
    EXIT_SOME_FAILED,
    add_device_argument,
    add_overwrite_argument,
    axes_for,
    check_output,
    count_bar,
    device_for,
)
from ._signals import stop_requested


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    den = subparsers.add_parser(
        "denoise", help="denoise images with a trained model",
        description="Denoise one image into -o (a .tif or .zarr), or several images (files, "
        "folders, glob patterns such as 'raw/*.tif') into the folder -o, each result named "
        "after its input. Results already there are skipped unless --overwrite; a file that "
        "fails is reported and the others are still done (exit status 1 if any failed).")
    den.add_argument("inputs", nargs="+", metavar="input",
                     help="noisy image(s): TIFF/OME-TIFF, zarr/OME-Zarr, PNG, JPEG, or a folder "
                     "of them, or a glob pattern")
    den.add_argument("-m", "--model", required=True,
                     help="model file written by 'napari-gr2r train' (required)")
    den.add_argument("-o", "--output", required=True,
                     help="result: .tif or .ome.tif (in memory) or .zarr (block by block) for "
                     "one image; a folder (created if missing) for several (required)")
    den.add_argument("--axes", help="axes of the input (default: from the file or the model)")
    den.add_argument("--tile", type=int,
                     help="tile side in pixels, at least 16; smaller tiles use less memory "
                     "(default: automatic)")
    den.add_argument("--tta", type=int, choices=[1, 2, 4, 8],
                     help="test-time augmentation: average the network over this many flips "
                     "and quarter turns of each tile, for as many times the work; 1: one pass "
                     "(default: the model's own: 8 for a model trained with the fast or "
                     "balanced preset, else 1)")
    den.add_argument("--precision", choices=list(PRECISIONS),
                     help="arithmetic of the network's passes: fp32, bf16 (CPUs and recent "
                     "GPUs), fp16 (CUDA GPUs only) or auto (bf16 on a GPU that has it, else "
                     "fp32); the result is float32 either way (default: the model's own, as it "
                     "was trained, where the device has it, else fp32)")
    den.add_argument("--suffix", default="",
                     help="with an output folder: added to each result's name, e.g. _denoised "
                     "(default: none)")
    den.add_argument("--format", choices=["tif", "zarr"],
                     help="with an output folder: the results' format (default: zarr for zarr "
                     "inputs, TIFF for the others)")
    add_device_argument(den)
    den.add_argument("--scheduler", metavar="ADDRESS",
                     help="run on this dask.distributed scheduler (e.g. tcp://10.0.0.5:8786): "
                     "the blocks of one .zarr output, or the files of an output folder; inputs "
                     "and outputs must be reachable by its workers (default: this process)")
    add_overwrite_argument(den, help="replace existing results (a .zarr output of an "
                           "interrupted run with the same model is resumed without it) "
                           "(default: skip or refuse)")
    return den


def _many(args: argparse.Namespace) -> bool:
    """Whether the inputs go into an output folder (else: one image into one result)."""
    if len(args.inputs) > 1:
        return True
    source, out = Path(args.inputs[0]), Path(args.output)
    from ..engine.io.formats import is_zarr_store

    if (source.is_dir() and not is_zarr_store(source)) or \
            (not source.exists() and any(c in args.inputs[0] for c in "*?[")):
        return True
    if out.exists():
        return out.is_dir() and not is_zarr_store(out)
    return not out.suffix  # a new name without an extension: a folder


def run(args: argparse.Namespace) -> int:
    many = _many(args)
    if many:
        return _run_many(args)
    args.input = args.inputs[0]
    return _run_one(args)


def _connect(args: argparse.Namespace) -> Any:
    if not args.scheduler:
        return None
    try:
        from distributed import Client
    except ImportError:
        raise InputError("--scheduler needs dask.distributed: pip install "
                         "'napari-gr2r[cluster]'") from None
    try:
        return Client(args.scheduler, timeout="20s")
    except OSError as exc:
        raise InputError(f"Cannot reach the scheduler at {args.scheduler}: {exc}") from None


# ---------------------------------------------------------------------------------- one image
def _run_one(args: argparse.Namespace) -> int:
    from .. import engine
    from ..engine.inference.memory import denoise_in_memory
    from ..engine.inference.tiling import tta_views
    from ..engine.io.formats import check_output_suffix, read_image, write_image
    from ..engine.io.outputs import OutputClaim
    from ..engine.io.provenance import warn_outside_range

    to_zarr = Path(args.output).suffix == ".zarr"
    out = check_output(args, resumable=to_zarr)
    check_output_suffix(out)  # no TIFF under another format's name
    device_for(args)
    if args.scheduler and not to_zarr:
        raise InputError("--scheduler needs a .zarr output (-o result.zarr) or an output folder.")
    model = engine.load_model(args.model)
    data, meta = read_image(args.input)
    axes = axes_for(args, data, meta, fallback=model.axes)
    t0 = time.perf_counter()
    if to_zarr:  # claimed by the engine, for the whole run
        _denoise_to_zarr(args, model, axes, out, meta)
    else:
        with OutputClaim(str(out)):  # one run at a time writes this file
            # checked here to name the file; denoised without the engine's second check
            warn_outside_range(model.open_source(data, axes), model.normalization.low,
                               model.normalization.high, args.input)
            with count_bar("tile") as progress:
                result = denoise_in_memory(model, data, axes, progress=progress,
                                           tile=args.tile, device=args.device, tta=args.tta,
                                           precision=args.precision,
                                           should_stop=stop_requested)
            write_image(out, result, axes, meta)
    views = tta_views(args.tta, model)
    flips = f", the mean of {views} flips and turns (--tta 1: one pass)" if views > 1 else ""
    print(f"denoised {args.input} ({axes}, shape {tuple(data.shape)}) in "
          f"{time.perf_counter() - t0:.1f} s{flips} -> {out} ({_kept(out, axes, meta)})")
    return 0


def _kept(out: Path, axes: str, meta: dict[str, Any]) -> str:
    """What the result holds besides its pixels, in words: its format, pixel size and the
    time between frames."""
    from ..engine.io.formats import suffix_of
    from ..engine.io.omezarr import fits_ome_zarr, open_result
    from ..engine.io.pixelsize import clean_scale
    from ..engine.io.pyramid import result_levels

    suffix = suffix_of(out)
    kind = "OME-TIFF" if suffix.startswith(".ome.tif") else "TIFF"
    if suffix.endswith(".zarr"):
        kind = "OME-Zarr" if fits_ome_zarr(axes) else "zarr array"
        levels = len(result_levels(open_result(out))) - 1
        if levels:
            kind += f" with {levels} lower-resolution level{'s' if levels > 1 else ''}"
    meta = clean_scale(meta, len(axes))
    scale = dict(zip(axes, meta.get("scale") or []))
    sizes = " × ".join(f"{a} {scale[a]:g}" for a in "ZYX" if a in scale)
    sized = sizes and (meta.get("unit") or any(scale.get(a, 1) != 1 for a in "ZYX"))
    words = [kind, f"pixel size {sizes} {meta.get('unit') or ''}".rstrip() if sized
             else "the input has no pixel size"]
    if meta.get("time_unit") and "T" in scale:
        words.append(f"frames every {scale['T']:g} {meta['time_unit']}")
    return "; ".join(words)


def _denoise_to_zarr(args: argparse.Namespace, model: Any, axes: str, out: Path,
                     meta: dict[str, Any]) -> None:
    """Block by block into a zarr store: bounded memory, resumable, optionally on a cluster."""
    from .. import engine

    client = _connect(args)
    with count_bar("block") as progress:
        try:
            engine.denoise_to_zarr(model, args.input, axes, str(out), tile=args.tile,
                                   device=args.device, client=client, progress=progress,
                                   overwrite=args.overwrite, precision=args.precision,
                                   tta=args.tta, should_stop=stop_requested, pixel_size=meta)
        finally:
            if client is not None:
                client.close()


# -------------------------------------------------------------------------------- many images
def _line(path: str, reason: str) -> str:
    name = Path(path).name
    return reason if name and name in reason else f"{path}: {reason}"


def _run_many(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .. import engine
    from ..engine.batch import run as F

    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"With several inputs -o is a folder, and {out_dir} is a file; choose "
                         "a folder (it is created if missing).")
    device_for(args)
    model = engine.load_model(args.model)
    client = _connect(args)
    files = bar = None
    try:
        for event in F.denoise_files(model, args.inputs, out_dir, axes=args.axes,
                                     suffix=args.suffix, out_format=args.format, tile=args.tile,
                                     device=args.device, overwrite=args.overwrite,
                                     client=client, precision=args.precision, tta=args.tta,
                                     should_stop=stop_requested):
            if files is None:
                files = tqdm(total=event.n_files, unit="file", desc="files", file=sys.stderr,
                             dynamic_ncols=True, position=0, delay=BAR_DELAY_S)
            if isinstance(event, F.FileStarted) and client is None:
                bar = tqdm(unit="block", desc=Path(event.path).name, file=sys.stderr,
                           dynamic_ncols=True, position=1, leave=False, delay=BAR_DELAY_S)
            elif isinstance(event, F.FileProgress) and bar is not None:
                bar.total = event.total
                bar.update(event.done - bar.n)
            elif isinstance(event, (F.FileDone, F.FileSkipped, F.FileFailed)):
                if bar is not None:
                    bar.close()
                    bar = None
                files.update(1)
                if isinstance(event, F.FileFailed):
                    tqdm.write(f"napari-gr2r: error: {_line(event.path, event.reason)}",
                               file=sys.stderr)
                elif isinstance(event, F.FileDone) and event.warning is not None:
                    tqdm.write(f"napari-gr2r: warning: {event.warning}", file=sys.stderr)
                elif isinstance(event, F.FileSkipped):
                    tqdm.write(f"skipped {event.path}: {event.reason}", file=sys.stderr)
            elif isinstance(event, F.FilesFinished):
                files.close()
                _summary(event, out_dir)
                if event.stopped:  # Ctrl-C or SIGTERM seen between files or blocks
                    raise KeyboardInterrupt
                return EXIT_SOME_FAILED if event.failed else 0
    finally:
        for open_bar in (bar, files):
            if open_bar is not None:
                open_bar.close()
        if client is not None:
            client.close()
    return 0


def _summary(event: Any, out_dir: Path) -> None:
    parts = [f"denoised {event.done} of {event.n_files} file(s) into {out_dir} in "
             f"{event.elapsed_s:.1f} s"]
    if event.skipped:
        parts.append(f"{event.skipped} already done (--overwrite to redo)")
    print("; ".join(parts))
    if event.warned:
        names = ", ".join(Path(p).name for p in event.warned)
        print(f"napari-gr2r: {len(event.warned)} result(s) may be wrong (values outside the "
              f"model's training range, warned above): {names}", file=sys.stderr)
    if event.failed:
        names = ", ".join(Path(p).name for p, _ in event.failed)
        print(f"napari-gr2r: {len(event.failed)} file(s) failed: {names}", file=sys.stderr)
