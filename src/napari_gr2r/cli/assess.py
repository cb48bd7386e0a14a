"""``napari-gr2r assess``: estimate a model's error on an image without a clean reference."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from ._common import add_device_argument, axes_for


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    sub = subparsers.add_parser(
        "assess", help="estimate the denoised image's error from the noisy image alone",
        description="Estimate the mean squared error (and PSNR) of denoising IN with the model "
        "against the unknown clean image, from the noisy image alone (Stein's unbiased risk "
        "estimate with the noise model fitted on IN), and say whether the residual holds signal.")
    sub.add_argument("input", help="noisy image: .tif or .zarr")
    sub.add_argument("-m", "--model", required=True, help="model file written by 'train'")
    sub.add_argument("--axes", help="axes of the input (default: from the file or the model)")
    sub.add_argument("--data-range", type=float,
                     help="peak for the PSNR (default: the image's 1st-99.9th percentile range)")
    sub.add_argument("--probes", type=int, default=4, help="Monte-Carlo probes (default: 4)")
    sub.add_argument("--seed", type=int, default=0,
                     help="seeds the crops, the noise fit and the probes (default: 0)")
    sub.add_argument("--noise", metavar="FILE", help="the noise from a calibration written by "
                     "'napari-gr2r calibrate' instead of a fit on IN")
    sub.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
    add_device_argument(sub)
    return sub


def run(args: argparse.Namespace) -> int:
    from .. import engine
    from ..engine.errors import InputError
    from ..engine.io.formats import read_image

    if args.probes < 1:
        raise InputError("--probes must be at least 1.")
    if args.data_range is not None and not args.data_range > 0:
        raise InputError("--data-range must be a positive number.")
    if args.json:  # before the assessment, not after it
        check_json_output(Path(args.json))
    noise = engine.NoiseCalibration.load(args.noise) if args.noise else "fit"
    model = engine.load_model(args.model)
    data, meta = read_image(args.input)
    axes = axes_for(args, data, meta, fallback=model.axes)
    report = engine.assess(model, data, axes, probes=args.probes, seed=args.seed,
                           device=args.device, noise=noise)
    print(f"{args.input} ({axes}, shape {tuple(data.shape)}) with {args.model}: "
          f"{report.pixels:,} pixels assessed")
    print(report.summary())
    if args.data_range is not None:
        print(f"estimated PSNR for data range {args.data_range:g}: "
              f"{report.psnr_text(args.data_range)}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report.to_dict(), f, indent=1)
        print(f"wrote {args.json}")
    return 0


def check_json_output(out: Path) -> None:
    """Refuse a ``--json`` path that cannot be written: a folder, a missing folder, a folder
    without write permission."""
    from ..engine.errors import OutputError

    folder = out.parent
    if out.is_dir():
        raise OutputError(f"--json {out} is a folder; give a file name, e.g. {out / 'report.json'}.")
    if not folder.is_dir():
        raise OutputError(f"--json {out}: the folder {folder} does not exist; create it first.")
    if not os.access(folder, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise OutputError(f"--json {out}: no permission to write there; choose another path.")
