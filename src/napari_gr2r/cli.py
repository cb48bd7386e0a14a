"""The ``napari-gr2r`` command line: ``train``, ``denoise`` and ``demo``.

Bad input ends with a one-line message on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .engine.errors import GR2RError, InputError

EXIT_BAD_INPUT = 2


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-gr2r",
        description="Self-supervised GR2R denoising of microscopy images.",
    )
    parser.add_argument("--version", action="version", version=f"napari-gr2r {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train a denoiser on a noisy image")
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
    train.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 or mps")
    train.add_argument("--overwrite", action="store_true", help="replace an existing output")

    den = sub.add_parser("denoise", help="denoise an image with a trained model")
    den.add_argument("input", help="noisy image: .tif or .zarr")
    den.add_argument("--model", required=True, help="model file written by 'train'")
    den.add_argument("-o", "--output", required=True, help="result: .tif or .zarr")
    den.add_argument("--axes", help="axes of the input (default: from the file or the model)")
    den.add_argument("--tile", type=int, help="tile size in pixels (default: automatic)")
    den.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 or mps")
    den.add_argument("--scheduler", metavar="ADDRESS",
                     help="with a .zarr output: run on this dask.distributed scheduler "
                     "(e.g. tcp://10.0.0.5:8786); input and output must be reachable by its workers")
    den.add_argument("--overwrite", action="store_true",
                     help="replace an existing output (a .zarr output of an interrupted run with "
                     "the same model is resumed without it)")

    demo = sub.add_parser("demo", help="train and denoise the bundled samples, print PSNR")
    demo.add_argument("--sample", default="all", choices=["all", "nuclei2d", "nuclei3d"])
    demo.add_argument("--steps", type=int, help="steps per sample (default: 300)")
    demo.add_argument("--method", default="gr2r", choices=["gr2r", "gr2r-paper"])
    demo.add_argument("--output-dir", help="also save the denoised images and models here")
    demo.add_argument("--device", default="auto")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        return {"train": _train, "denoise": _denoise, "demo": _demo}[args.command](args)
    except (GR2RError, FileNotFoundError, FileExistsError, IsADirectoryError,
            PermissionError) as exc:
        print(f"napari-gr2r: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("napari-gr2r: interrupted", file=sys.stderr)
        return 130


# ----------------------------------------------------------------------------------------------


def _check_output(args: argparse.Namespace, resumable: bool = False) -> Path:
    out = Path(args.output)
    if out.resolve() == Path(args.input).resolve():
        raise InputError("The output would overwrite the input; choose another output path.")
    if out.exists() and not args.overwrite and not resumable:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it.")
    return out


def _axes_for(args: argparse.Namespace, data: Any, meta: dict[str, Any],
              fallback: str | None = None) -> str:
    if args.axes:
        return args.axes  # checked against the shape by the engine, with its own message
    axes = meta.get("axes") or fallback
    if axes is None or len(axes) != len(data.shape):
        raise InputError(
            f"The axes of {Path(args.input).name} (shape {tuple(data.shape)}) are not known; "
            "pass them with --axes, e.g. --axes ZYX."
        )
    return axes


def _train(args: argparse.Namespace) -> int:
    from . import engine
    from .io import read_image

    out = _check_output(args)
    data, meta = read_image(args.input)
    axes = _axes_for(args, data, meta)
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
    _run_with_bar(trainer)
    engine.save_model(trainer.model, out)
    print(f"saved {out} ({trainer.model!r}, best step {trainer.model.best_step})")
    return 0


def _correlation_text(event: Any) -> str:
    if not event.noise_correlation:
        return ""
    return f", correlated between neighbouring pixels ({event.noise_correlation:.2f})"


def _run_with_bar(trainer: Any) -> None:
    from tqdm import tqdm

    from .engine import CollapseDetected, TrainingFinished, TrainingProgress, TrainingStarted

    bar = None
    start = 0
    try:
        for event in trainer.iter_fit():
            if isinstance(event, TrainingStarted):
                print(f"training a {event.net_dims}D network ({event.n_parameters:,} parameters) "
                      f"on {event.device}, patches {event.patch_shape}, estimated noise SD "
                      f"{event.noise_sd:.3g}{_correlation_text(event)}", file=sys.stderr)
                start = event.step
                bar = tqdm(total=event.total_steps - start, unit="step",
                           file=sys.stderr, dynamic_ncols=True)
            elif isinstance(event, TrainingProgress) and bar is not None:
                bar.update(event.step - start - bar.n)
                postfix = {"loss": f"{event.loss:.4g}", "patch/s": f"{event.patches_per_s:.0f}"}
                if event.val_loss is not None:
                    postfix["val"] = f"{event.val_loss:.4g}"
                bar.set_postfix(postfix, refresh=False)
            elif isinstance(event, CollapseDetected):
                tqdm.write(f"warning: {event.message}", file=sys.stderr)
            elif isinstance(event, TrainingFinished) and bar is not None:
                bar.close()
    except KeyboardInterrupt:
        trainer.request_stop()
        raise
    finally:
        if bar is not None:
            bar.close()


def _denoise_with_bar(model: Any, data: Any, axes: str, **kwargs: Any) -> np.ndarray:
    from tqdm import tqdm

    from . import engine

    with tqdm(unit="tile", file=sys.stderr, dynamic_ncols=True, desc="denoising") as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        return engine.denoise(model, data, axes=axes, progress=progress, **kwargs)


def _denoise(args: argparse.Namespace) -> int:
    from . import engine
    from .io import read_image, write_image

    to_zarr = Path(args.output).suffix == ".zarr"
    out = _check_output(args, resumable=to_zarr)
    model = engine.load_model(args.model)
    data, meta = read_image(args.input)
    axes = _axes_for(args, data, meta, fallback=model.axes)
    t0 = time.perf_counter()
    if to_zarr:
        _denoise_to_zarr(args, model, axes, out)
    else:
        if args.scheduler:
            raise InputError("--scheduler needs a .zarr output (-o result.zarr).")
        result = _denoise_with_bar(model, data, axes, tile=args.tile, device=args.device)
        write_image(out, result, axes, meta)
    print(f"denoised {args.input} ({axes}, shape {tuple(data.shape)}) in "
          f"{time.perf_counter() - t0:.1f} s -> {out}")
    return 0


def _denoise_to_zarr(args: argparse.Namespace, model: Any, axes: str, out: Path) -> None:
    """Block by block into a zarr store: bounded memory, resumable, optionally on a cluster."""
    from tqdm import tqdm

    from . import engine

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
    with tqdm(unit="block", file=sys.stderr, dynamic_ncols=True, desc="denoising") as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            engine.denoise_to_zarr(model, args.input, axes, str(out), tile=args.tile,
                                   device=args.device, client=client, progress=progress,
                                   overwrite=args.overwrite)
        finally:
            if client is not None:
                client.close()


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB, with the reference's range as the peak."""
    reference = np.asarray(reference, np.float64)
    mse = float(np.mean((np.asarray(image, np.float64) - reference) ** 2))
    peak = float(reference.max() - reference.min())
    return 10 * np.log10(peak**2 / mse) if mse > 0 else float("inf")


def _demo(args: argparse.Namespace) -> int:
    from . import engine
    from .sample_data import SAMPLES, load_sample

    names = list(SAMPLES) if args.sample == "all" else [args.sample]
    print(f"napari-gr2r {__version__} demo: training {args.method} on the bundled samples "
          f"(fast preset, CPU threads {_threads()})")
    rows = []
    for name in names:
        noisy, clean, info = load_sample(name)
        axes = info["axes"]
        steps = args.steps or 300
        config = engine.TrainConfig.from_preset("fast", steps=steps, method=args.method, seed=0)
        print(f"\n{name}: {info['description']}\n  shape {noisy.shape} ({axes}), {noisy.dtype}, "
              f"{steps} steps")
        t0 = time.perf_counter()
        trainer = engine.Trainer(noisy, axes, config, device=args.device)
        _run_with_bar(trainer)
        t_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        denoised = engine.denoise(trainer.model, noisy, axes=axes, device=args.device)
        t_infer = time.perf_counter() - t0
        before, after = psnr(noisy, clean), psnr(denoised, clean)
        rows.append((name, before, after))
        print(f"  trained in {t_train:.1f} s, denoised in {t_infer:.2f} s")
        print(f"  PSNR against the clean reference: noisy {before:.2f} dB -> denoised "
              f"{after:.2f} dB ({after - before:+.2f} dB)")
        if args.output_dir:
            from .io import write_image

            folder = Path(args.output_dir)
            write_image(folder / f"{name}_denoised.tif", denoised, axes, info)
            engine.save_model(trainer.model, folder / f"{name}.gr2r.pt")
            print(f"  wrote {folder / (name + '_denoised.tif')} and {folder / (name + '.gr2r.pt')}")
    print("\nsummary (PSNR dB): " + "; ".join(f"{n} {b:.2f} -> {a:.2f}" for n, b, a in rows))
    return 0


def _threads() -> int:
    import torch

    return torch.get_num_threads()
