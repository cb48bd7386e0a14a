"""``napari-gr2r train``: train a denoiser on noisy images and save the model.

Several files, folders or glob patterns train one model on all their images (of the same
axes), with patches and validation patches from every image.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..engine.errors import InputError
from ._common import (
    add_device_argument,
    add_overwrite_argument,
    axes_for,
    check_output,
    device_for,
    train_with_bar,
)

PRESET_TEXT = {
    "fast": "U-Net width 16, depth 2, a 2D network over Z slices, 400 steps: a laptop CPU",
    "balanced": "width 32, depth 3, 2000 steps: a workstation or a GPU",
    "quality": "width 48, depth 4, larger patches, 20,000 steps: a long run on a GPU",
}


def default_preset(device: Any) -> str:
    """The preset a run gets without ``--preset``: ``fast`` on a CPU, ``balanced`` on a GPU."""
    return "fast" if getattr(device, "type", str(device)) == "cpu" else "balanced"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    train = subparsers.add_parser(
        "train", help="train a denoiser on noisy images",
        description="Train a GR2R denoiser on a noisy image (no clean image needed) and save "
        "it as one model file. Several images (files, folders, glob patterns) of the same axes "
        "train one model on all of them. The time the run will take is printed after its "
        "first steps.")
    train.add_argument("inputs", nargs="+", metavar="input",
                       help="noisy image(s): TIFF/OME-TIFF, zarr/OME-Zarr, PNG, JPEG, a folder "
                       "of them or a glob pattern; several train one model on all of them")
    train.add_argument("--axes", help="one letter per dimension, e.g. YX, ZYX, TYX, CZYX "
                       "(default: read from the file)")
    train.add_argument("-o", "--output", required=True,
                       help="model file to write, e.g. nuclei.gr2r.pt (required)")
    train.add_argument("--preset", choices=list(PRESET_TEXT),
                       help="network and training budget: " + "; ".join(
                           f"{k}: {v}" for k, v in PRESET_TEXT.items())
                       + " (default: fast on a CPU, balanced on a GPU)")
    train.add_argument("--method", default="gr2r", choices=["gr2r", "gr2r-paper", "r2r", "n2c"],
                       help="gr2r: self-supervised, stable; gr2r-paper: the paper's objective, "
                       "can collapse; r2r: known noise (--noise-sigma, --noise-gain); n2c: "
                       "supervised (--target) (default: %(default)s)")
    train.add_argument("--steps", type=int, help="optimiser steps (default: the preset's)")
    train.add_argument("--net-dims", default="auto", choices=["auto", "2d", "3d"],
                       help="2D network over Z slices or 3D network; auto picks 3D for deep "
                       "enough Z stacks, except with the fast preset (default: %(default)s)")
    train.add_argument("--noise-sigma", type=float,
                       help="for --method r2r: the Gaussian noise's standard deviation, in the "
                       "image's units (default: none, required by r2r)")
    train.add_argument("--noise-gain", type=float,
                       help="for --method r2r: the Poisson gain, for Poisson-Gaussian noise "
                       "(default: none, Gaussian noise)")
    train.add_argument("--noise-offset", type=float, default=0.0,
                       help="for --method r2r: the camera's dark level, for Poisson-Gaussian "
                       "noise (default: %(default)s)")
    train.add_argument("--target", nargs="+",
                       help="for --method n2c: the clean image, one per input in the same order "
                       "(default: none)")
    train.add_argument("--resume", help="model file to continue training (default: a new "
                       "model)")
    train.add_argument("--seed", type=int, default=0,
                       help="seed of every random draw: equal seeds give equal runs on a CPU "
                       "(default: %(default)s)")
    add_device_argument(train)
    add_overwrite_argument(train)
    return train


def run(args: argparse.Namespace) -> int:
    from .. import engine
    from ..engine.files import expand_inputs
    from ..io import read_image

    paths = expand_inputs(args.inputs)
    if not paths:
        raise InputError("No image files to train on (the folders given hold none).")
    for path in paths:
        args.input = path
        out = check_output(args)
    device = device_for(args)
    preset = args.preset or default_preset(device)
    images, axes = [], None
    for path in paths:
        data, meta = read_image(path)
        args.input = path
        file_axes = axes_for(args, data, meta)
        if axes is not None and file_axes != axes:
            raise InputError(f"{Path(path).name} has axes {file_axes} and {Path(paths[0]).name} "
                             f"{axes}; one model trains on images of the same axes (or pass "
                             "--axes).")
        axes = file_axes
        images.append(data)
    overrides: dict[str, Any] = {"method": args.method, "net_dims": args.net_dims,
                                 "seed": args.seed}
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.method == "r2r":
        overrides["noise_sigma"] = args.noise_sigma
        if args.noise_gain:
            overrides.update(noise_model="poisson-gaussian", noise_gain=args.noise_gain,
                             noise_offset=args.noise_offset)
    config = engine.TrainConfig.from_preset(preset, **overrides)
    target = None
    if args.target:
        targets = [read_image(p)[0] for p in expand_inputs(args.target)]
        if len(targets) != len(images):
            raise InputError(f"{len(targets)} clean target(s) for {len(images)} input(s); give "
                             "one --target per input, in the same order.")
        target = targets if len(images) > 1 else targets[0]
    model = engine.load_model(args.resume) if args.resume else None
    data = images if len(images) > 1 else images[0]
    if len(images) > 1:
        print(f"training on {len(images)} images", file=sys.stderr)
    trainer = engine.Trainer(data, axes, config, target=target, model=model, device=device)
    if args.preset is None:  # said once the input is known to be usable
        where = "a CPU" if device.type == "cpu" else "a GPU"
        print(f"preset {preset} (the default on {where}: {PRESET_TEXT[preset]}; --preset "
              "chooses another)", file=sys.stderr)
    train_with_bar(trainer)
    engine.save_model(trainer.model, out)
    print(f"saved {out} ({trainer.model!r}, best step {trainer.model.best_step})")
    return 0
