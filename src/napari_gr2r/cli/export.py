"""``napari-gr2r export``: a trained model as a BioImage Model Zoo package (.zip)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..engine.errors import InputError
from ._common import add_overwrite_argument


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    exp = subparsers.add_parser(
        "export", help="write a model as a BioImage Model Zoo package (.zip)",
        description="Write a trained model as a BioImage Model Zoo package, which Fiji "
        "(deepImageJ), ilastik, BioEngine and bioimageio.core run. Needs the bioimageio extra: "
        'pip install "napari-gr2r[bioimageio]".')
    exp.add_argument("model", help="model file written by 'train' (.gr2r.pt)")
    exp.add_argument("-o", "--output", required=True, help="package to write (.zip)")
    exp.add_argument("--name", help="the name the zoo's tools show (letters, digits, spaces, _+-())")
    exp.add_argument("--author", action="append", dest="authors", metavar="NAME",
                     help="who trained the model (repeat for several authors)")
    exp.add_argument("--description", help="one or two sentences about the model")
    exp.add_argument("--cover", help="a PNG or JPEG cover picture (default: noisy | denoised)")
    exp.add_argument("--test-image", metavar="IMAGE",
                     help="an image with the model's axes (.tif or .zarr) whose centre becomes the "
                     "package's test image (default: a synthetic one with the model's noise)")
    add_overwrite_argument(exp)
    return exp


def run(args: argparse.Namespace) -> int:
    from .. import engine
    from ..engine.io.formats import read_image

    out = Path(args.output)
    if out.suffix.lower() != ".zip":
        raise InputError(f"A BioImage Model Zoo package is a zip file: give -o a path ending in "
                         f".zip, not {out.name!r}.")
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it.")
    model = engine.load_model(args.model)
    test = None
    if args.test_image:
        test, _ = read_image(args.test_image)
    t0 = time.perf_counter()
    path = engine.export_bioimageio(model, out, name=args.name, authors=args.authors,
                                    description=args.description, cover=args.cover,
                                    test_input=test)
    size = path.stat().st_size / 1e6
    print(f"exported {args.model} in {time.perf_counter() - t0:.1f} s -> {path} ({size:.1f} MB); "
          f"test it with: bioimageio test {path}")
    return 0
