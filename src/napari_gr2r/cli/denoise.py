"""``napari-gr2r denoise``: denoise an image with a trained model, in memory or into zarr."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..engine.errors import InputError
from ._common import (
    add_device_argument,
    add_overwrite_argument,
    axes_for,
    check_output,
    count_bar,
    device_for,
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    den = subparsers.add_parser(
        "denoise", help="denoise an image with a trained model",
        description="Denoise an image with a model written by 'napari-gr2r train': into a TIFF "
        "in memory, or block by block into a zarr store (bounded memory, resumable).")
    den.add_argument("input", help="noisy image: .tif or .zarr (an OME-Zarr image too)")
    den.add_argument("--model", required=True,
                     help="model file written by 'napari-gr2r train' (required)")
    den.add_argument("-o", "--output", required=True,
                     help="result: .tif (in memory) or .zarr (block by block) (required)")
    den.add_argument("--axes", help="axes of the input (default: from the file or the model)")
    den.add_argument("--tile", type=int,
                     help="tile side in pixels, at least 16; smaller tiles use less memory "
                     "(default: automatic)")
    add_device_argument(den)
    den.add_argument("--scheduler", metavar="ADDRESS",
                     help="with a .zarr output: run on this dask.distributed scheduler "
                     "(e.g. tcp://10.0.0.5:8786); input and output must be reachable by its "
                     "workers (default: this process)")
    add_overwrite_argument(den, help="replace an existing output (a .zarr output of an "
                           "interrupted run with the same model is resumed without it) "
                           "(default: refuse)")
    return den


def run(args: argparse.Namespace) -> int:
    from .. import engine
    from ..io import read_image, write_image

    to_zarr = Path(args.output).suffix == ".zarr"
    out = check_output(args, resumable=to_zarr)
    device_for(args)
    model = engine.load_model(args.model)
    data, meta = read_image(args.input)
    axes = axes_for(args, data, meta, fallback=model.axes)
    t0 = time.perf_counter()
    if to_zarr:
        _denoise_to_zarr(args, model, axes, out)
    else:
        if args.scheduler:
            raise InputError("--scheduler needs a .zarr output (-o result.zarr).")
        with count_bar("tile") as progress:
            result = engine.denoise(model, data, axes=axes, progress=progress, tile=args.tile,
                                    device=args.device)
        write_image(out, result, axes, meta)
    print(f"denoised {args.input} ({axes}, shape {tuple(data.shape)}) in "
          f"{time.perf_counter() - t0:.1f} s -> {out}")
    return 0


def _denoise_to_zarr(args: argparse.Namespace, model: Any, axes: str, out: Path) -> None:
    """Block by block into a zarr store: bounded memory, resumable, optionally on a cluster."""
    from .. import engine

    client = None
    if args.scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise InputError("--scheduler needs dask.distributed: pip install "
                             "'napari-gr2r[cluster]'") from None
        try:
            client = Client(args.scheduler, timeout="20s")
        except OSError as exc:
            raise InputError(f"Cannot reach the scheduler at {args.scheduler}: {exc}") from None
    with count_bar("block") as progress:
        try:
            engine.denoise_to_zarr(model, args.input, axes, str(out), tile=args.tile,
                                   device=args.device, client=client, progress=progress,
                                   overwrite=args.overwrite)
        finally:
            if client is not None:
                client.close()
