"""``napari-gr2r calibrate``: a noise calibration from repeated captures of a still field."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import add_overwrite_argument, axes_for, check_output


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    sub = subparsers.add_parser(
        "calibrate", help="measure the camera's noise from repeated captures of a still field",
        description="Measure the noise (variance against intensity, correlation between "
        "pixels) from two or more captures of the same still field, stacked along T in IN, or "
        "from the camera's numbers (--gain, --offset, --read-noise); write it as JSON for "
        "'assess --noise' and 'train --noise'.")
    sub.add_argument("input", nargs="?", help="captures: .tif or .zarr with a T axis")
    sub.add_argument("-o", "--output", required=True, help="the calibration to write (.json)")
    sub.add_argument("--axes", help="axes of the input (default: from the file, else TYX)")
    sub.add_argument("--gain", type=float, help="camera gain (units per photo-electron), "
                     "instead of captures")
    sub.add_argument("--offset", type=float, default=0.0,
                     help="camera offset: the value with no light (default: 0)")
    sub.add_argument("--read-noise", type=float, default=0.0,
                     help="read noise standard deviation in the camera's units (default: 0)")
    add_overwrite_argument(sub)
    return sub


def run(args: argparse.Namespace) -> int:
    from .. import engine
    from ..engine.errors import InputError
    from ..io import read_image

    if (args.input is None) == (args.gain is None):
        raise InputError("Give either captures (IN) or the camera's --gain (with --offset and "
                         "--read-noise), not both or neither.")
    if args.input is None:
        out = Path(args.output)
        if out.exists() and not args.overwrite:
            raise FileExistsError(f"{out} exists; pass --overwrite to replace it.")
        cal = engine.NoiseCalibration.from_camera(args.gain, args.offset, args.read_noise)
        described = f"gain {args.gain:g}, offset {args.offset:g}, read noise {args.read_noise:g}"
    else:
        out = check_output(args)
        data, meta = read_image(args.input)
        if not args.axes and data.ndim == 3 and "T" not in str(meta.get("axes") or ""):
            args.axes = "TYX"  # a stack of captures, whatever a reader guesses
        axes = axes_for(args, data, meta).replace("S", "T")  # samples of a stack: captures
        if "T" not in axes:
            raise InputError(f"{args.input} has axes {axes}, without T: a calibration needs "
                             "the captures along T (pass --axes, e.g. --axes TYX).")
        cal = engine.calibrate_noise(data, axes)
        described = f"{cal.frames} captures of {args.input}"
    cal.save(out)
    print(f"noise from {described}: {cal.describe()}; wrote {out}")
    return 0
