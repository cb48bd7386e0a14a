"""``napari-gr2r train``: train a denoiser on a noisy image and save the model."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import add_device_argument, add_overwrite_argument, axes_for, check_output, train_with_bar


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    train = subparsers.add_parser("train", help="train a denoiser on a noisy image")
    train.add_argument("input", help="noisy image: .tif or .zarr")
    train.add_argument("--axes", help="one letter per dimension, e.g. YX, ZYX, TYX, CZYX "
                       "(default: read from the file)")
    train.add_argument("-o", "--output", required=True, help="model file to write (.gr2r.pt)")
    train.add_argument("--preset", default="balanced", choices=["fast", "balanced", "quality"])
    train.add_argument("--method", default="gr2r",
                       choices=["gr2r", "gr2r-paper", "r2r", "n2c"])
    train.add_argument("--steps", type=int, help="optimiser steps (default: the preset's)")
    train.add_argument("--net-dims", default="auto", choices=["auto", "2d", "3d"])
    train.add_argument("--noise-sigma", type=float, help="for --method r2r: Gaussian noise SD")
    train.add_argument("--noise-gain", type=float,
                       help="for --method r2r: Poisson gain (Poisson-Gaussian noise)")
    train.add_argument("--noise-offset", type=float, default=0.0,
                       help="for --method r2r: the camera's dark level (Poisson-Gaussian noise)")
    train.add_argument("--target", help="for --method n2c: the clean image")
    train.add_argument("--resume", help="model file to continue training")
    train.add_argument("--seed", type=int, default=0)
    add_device_argument(train)
    add_overwrite_argument(train)
    return train


def run(args: argparse.Namespace) -> int:
    from .. import engine
    from ..io import read_image

    out = check_output(args)
    data, meta = read_image(args.input)
    axes = axes_for(args, data, meta)
    overrides: dict[str, Any] = {"method": args.method, "net_dims": args.net_dims,
                                 "seed": args.seed}
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.method == "r2r":
        overrides["noise_sigma"] = args.noise_sigma
        if args.noise_gain:
            overrides.update(noise_model="poisson-gaussian", noise_gain=args.noise_gain,
                             noise_offset=args.noise_offset)
    config = engine.TrainConfig.from_preset(args.preset, **overrides)
    target = read_image(args.target)[0] if args.target else None
    model = engine.load_model(args.resume) if args.resume else None
    trainer = engine.Trainer(data, axes, config, target=target, model=model, device=args.device)
    train_with_bar(trainer)
    engine.save_model(trainer.model, out)
    print(f"saved {out} ({trainer.model!r}, best step {trainer.model.best_step})")
    return 0
