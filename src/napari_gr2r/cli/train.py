"""``napari-gr2r train``: train a denoiser on noisy images and save the model.

Several files, folders or glob patterns train one model on all their images (of the same
axes), with patches and validation patches from every image.

The model file is written while training runs (a checkpoint every ``--checkpoint-every`` steps,
by default every two minutes), so a crash loses at most one interval: ``--resume`` continues
the run it holds. Ctrl-C stops like the widget's Stop: training ends after the current step,
the best weights so far are saved, and the exit status is 130.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..engine.config import METHODS, PRECISIONS, PRESETS
from ..engine.errors import ConfigError, InputError, OutputError
from ._common import (
    EXIT_INTERRUPTED,
    add_device_argument,
    add_overwrite_argument,
    axes_for,
    check_model_output,
    check_output,
    check_resume_fits,
    check_resume_image,
    claim_output,
    device_for,
    print_estimate,
    save_or_keep,
    train_with_bar,
)

PRESET_TEXT = {
    "fast": "U-Net width 16, depth 2, a 2D network (a stack plane by plane), 620 steps: a laptop CPU",
    "balanced": "four fast networks averaged (an ensemble), about 4x fast's time on a CPU",
    "quality": "width 48, depth 4, larger patches, 20,000 steps: a long run on a GPU",
}
"""What ``--help`` says of each of the engine's :data:`~napari_gr2r.engine.config.PRESETS`."""


EPILOG = """\
The model file is written atomically while training runs, so a crash (or kill -9) leaves a
loadable file at most one checkpoint interval behind; run the same command with --resume to
continue it. Ctrl-C ends training after the current step and saves the best weights so far
(exit status 130; a second Ctrl-C quits at once, leaving the last checkpoint). Bad input: one
line on stderr, exit status 2.
"""


RESUME_DEFAULTS = {"method": "gr2r", "net_dims": "auto", "seed": 0}
"""The defaults of the flags ``--resume`` refuses to change (see check_resume_fits)."""


def default_preset(device: Any) -> str:
    """The preset a run gets without ``--preset``: ``fast`` on a CPU, ``balanced`` on a GPU."""
    return "fast" if getattr(device, "type", str(device)) == "cpu" else "balanced"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    train = subparsers.add_parser(
        "train", help="train a denoiser on a noisy image",
        description="Train a GR2R denoiser on a noisy image (no clean image needed) and save "
        "it as one model file. Several images (files, folders, glob patterns) of the same axes "
        "train one model on all of them. The time the run will take is printed after its "
        "first steps.", epilog=EPILOG)
    train.add_argument("inputs", nargs="+", metavar="input",
                       help="noisy image(s): TIFF/OME-TIFF, zarr/OME-Zarr, PNG, JPEG, a folder "
                       "of them or a glob pattern; several train one model on all of them")
    train.add_argument("--axes", help="one letter per dimension, e.g. YX, ZYX, TYX, CZYX "
                       "(default: read from the file)")
    train.add_argument("-o", "--output", required=True,
                       help="model file to write, e.g. nuclei.gr2r.pt (required)")
    train.add_argument("--preset", choices=list(PRESETS),
                       help="network and training budget: " + "; ".join(
                           f"{k}: {PRESET_TEXT.get(k, k)}" for k in PRESETS)
                       + " (default: fast on a CPU, balanced on a GPU)")
    train.add_argument("--method", default="gr2r", choices=list(METHODS),
                       help="gr2r: self-supervised, stable; gr2r-paper: the paper's objective, "
                       "can collapse; r2r: known noise (--noise-sigma, --noise-gain); n2c: "
                       "supervised (--target) (default: %(default)s)")
    train.add_argument("--steps", type=int, help="optimiser steps (default: the preset's); "
                       "with --resume, the step the run ends at (default: the run's own)")
    train.add_argument("--members", type=int, metavar="K",
                       help="train K networks side by side, each on its own patches, and "
                       "denoise with their mean: K times the training time, and an error at "
                       "most the networks' average (default: 1)")
    train.add_argument("--start", choices=["prior", "scratch"],
                       help="where the network's weights start: the pretrained prior (the "
                       "fast preset's default; a 2D one-channel fast network only) or random "
                       "weights (the other presets' default)")
    train.add_argument("--net-dims", default="auto", choices=["auto", "2d", "3d"],
                       help="2D network over Z slices or 3D network; auto picks 3D for deep "
                       "enough Z stacks, except with the fast preset (default: %(default)s)")
    train.add_argument("--context", type=_context, metavar="K",
                       help="neighbouring planes on each side that the 2D network sees with "
                       "each plane: along T for a time-lapse, along Z for a Z stack; 'auto' "
                       "measures how much neighbouring planes share and picks 0-3 "
                       "(default: 0, each plane alone)")
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
    train.add_argument("--checkpoint-every", type=int, metavar="K",
                       help="write the model file every K steps while training (default: every "
                       "2 minutes; 0: only at the end)")
    train.add_argument("--resume", nargs="?", const=True, metavar="MODEL",
                       help="continue the interrupted run saved in the output file (or in "
                       "MODEL) with its own settings, up to --steps; without a file there, "
                       "start a new run (default: a new run)")
    _add_run_arguments(train)
    train.add_argument("--noise", metavar="FILE", help="the noise from a calibration written "
                       "by 'napari-gr2r calibrate' instead of a fit on the input")
    train.add_argument("--seed", type=int, default=0,
                       help="seed of every random draw: equal seeds give equal runs on a CPU "
                       "(default: %(default)s)")
    add_device_argument(train)
    add_overwrite_argument(train)
    return train


def _add_run_arguments(train: argparse.ArgumentParser) -> None:
    """How the run computes and what the model keeps for denoising."""
    train.add_argument("--precision", choices=list(PRECISIONS),
                       help="arithmetic of the network's passes: auto (fp32 on a CPU, bf16 on a "
                       "GPU that has it), fp32, bf16, or fp16 (CUDA GPUs only) (default: auto; "
                       "with --resume, the run's own)")
    train.add_argument("--compile", action="store_true", default=None,
                       help="compile the network with torch.compile (where it fails, training "
                       "says so and runs without it) (default: off)")
    train.add_argument("--tta", type=int, choices=[1, 2, 4, 8],
                       help="flips and quarter turns the model averages when it denoises, "
                       "recorded in the model file (default: the preset's: 8 for fast and "
                       "balanced, 1 for quality)")
    train.add_argument("--keep-hot-pixels", dest="hot_pixels", action="store_false",
                       default=None,
                       help="keep isolated pixels far above or below all their neighbours as "
                       "they are (default: such hot or dead camera pixels are replaced by "
                       "their neighbours' median in training and denoising, as recorded in "
                       "the model file; keep them for an image so coarsely sampled that a "
                       "real spot fits in one pixel)")


def _first_process() -> bool:
    """False in the processes after the first one of a torchrun launch."""
    return os.environ.get("RANK", "0") == "0"


def _say(message: str) -> None:
    """A note on stderr, from the first process only when torchrun started several."""
    if _first_process():
        print(message, file=sys.stderr)


def check_writable(out: Path) -> None:
    """Refuse an output that cannot be written, before any training (a folder, a place
    without write permission, a path through a file)."""
    if out.is_dir():
        raise OutputError(f"{out} is a folder; give a file name for the model, e.g. "
                          f"{out / 'model.gr2r.pt'}.")
    folder = out.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {out}: {folder} is a file, not a folder; choose "
                          "another output path.")
    try:  # a real probe: permissions, read-only file systems, quotas
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}; choose another output "
                          "path.") from None


def _config(args: argparse.Namespace, preset: str, engine: Any) -> Any:
    overrides: dict[str, Any] = {"method": args.method, "net_dims": args.net_dims,
                                 "seed": args.seed}
    if args.steps is not None:
        overrides["steps"] = args.steps
    overrides.update(_run_options(args))
    if args.context is not None:
        overrides["context"] = args.context
    if args.members is not None:
        overrides["members"] = args.members
    if args.start is not None:
        overrides["start"] = args.start
    if args.method == "r2r":
        overrides["noise_sigma"] = args.noise_sigma
        if args.noise_gain:
            overrides.update(noise_model="poisson-gaussian", noise_gain=args.noise_gain,
                             noise_offset=args.noise_offset)
    return engine.TrainConfig.from_preset(preset, **overrides)


def _run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The settings a resumed run takes from the command line as well as a new one."""
    options = {"checkpoint_every": args.checkpoint_every, "precision": args.precision,
               "compile": args.compile, "tta": args.tta, "hot_pixels": args.hot_pixels}
    return {k: v for k, v in options.items() if v is not None}


def _run_to_resume(args: argparse.Namespace, out: Path, engine: Any) -> tuple[Any, Any]:
    """``(model, config)`` of the run ``--resume`` continues, or ``(None, None)``."""
    from ..engine.training.resume import run_to_resume

    if not args.resume:
        return None, None
    source = out if args.resume is True else Path(args.resume)
    if args.resume is True and not out.exists():
        _say(f"no run to resume in {out}; starting a new one")
        return None, None
    model = engine.load_model(source)
    for flag, name, value in (("--members", "members", args.members),
                              ("--context", "context", args.context),
                              ("--start", "start", args.start)):
        # "auto" is what the run resolved to a number of planes when it started
        if value not in (None, "auto") and value != getattr(model.config, name):
            raise InputError(f"The run in {source} trains with {name}={getattr(model.config, name)}"
                             f"; a resumed run keeps its own, so leave out {flag} {value} "
                             "or train a new model.")
    changes = _run_options(args)
    if args.steps is not None:
        changes["steps"] = args.steps
    config = model.config.replace(**changes)
    try:
        _, run_start = run_to_resume(model, config.steps)
    except ConfigError:
        raise InputError(f"The run in {source} is complete ({model.step} steps); pass a larger "
                         "--steps to train it further.") from None
    _say(f"resuming the run in {source.name} at step {model.step} of "
         f"{run_start + config.steps}")
    return model, config


def _context(text: str) -> int | str:
    """``--context``: a whole number of planes, or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of planes or 'auto', not {text!r}") from None


@contextlib.contextmanager
def _ctrl_c_stops(trainer: Any) -> Iterator[None]:
    """The first Ctrl-C (or SIGTERM, from a scheduler or torchrun) asks the trainer to stop
    after its step; a second one of the same kind quits at once. Under torchrun, which passes
    a Ctrl-C on to processes that had it already, every signal only asks to stop: a process
    quitting alone would leave the others waiting for it (torchrun ends them if need be)."""
    shared = trainer.world.active

    def on_signal(signum: int, frame: Any) -> None:
        if not shared:
            signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT
                          else signal.SIG_DFL)
        elif trainer.stop_requested:
            return
        trainer.request_stop()
        if trainer.world.is_main:  # the one that saves (and each process had the signal)
            print("\nnapari-gr2r: stopping after this step and saving the best weights"
                  + ("" if shared else " (Ctrl-C again to quit without saving)"),
                  file=sys.stderr)

    previous = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    except ValueError:  # not the main thread: signals cannot reach this one anyway
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _read_images(args: argparse.Namespace, paths: list[Any]) -> tuple[Any, str]:
    """The image (or list of images, for several inputs) and their common axes."""
    from ..engine.io.formats import read_image

    images, axes = [], None
    for path in paths:
        data, meta = read_image(path)
        file_axes = axes_for(args, data, meta, path=path)
        if axes is not None and file_axes != axes:
            raise InputError(f"{Path(path).name} has axes {file_axes} and {Path(paths[0]).name} "
                             f"{axes}; one model trains on images of the same axes (or pass "
                             "--axes).")
        axes = file_axes
        images.append(data)
    if len(images) > 1:
        _say(f"training on {len(images)} images")
    return (images if len(images) > 1 else images[0]), str(axes)


def _targets(args: argparse.Namespace, count: int) -> Any:
    from ..engine.batch.run import expand_inputs
    from ..engine.io.formats import read_image

    if not args.target:
        return None
    targets = [read_image(p)[0] for p in expand_inputs(args.target)]
    if len(targets) != count:
        raise InputError(f"{len(targets)} clean target(s) for {count} input(s); give one "
                         "--target per input, in the same order.")
    return targets if count > 1 else targets[0]


def run(args: argparse.Namespace) -> int:
    """``napari-gr2r train``; then collects what the run left in reference cycles, so that a
    distributed run's wrapper and its process group are freed while the interpreter is whole
    (freed during its shutdown, gloo's worker threads can abort the process)."""
    try:
        return _run(args)
    finally:
        gc.collect()


def _run(args: argparse.Namespace) -> int:
    from .. import engine
    from ..engine.batch.run import expand_inputs

    paths = expand_inputs(args.inputs)
    if not paths:
        raise InputError("No image files to train on (the folders given hold none).")
    out = check_output(args, resumable=bool(args.resume), inputs=paths)
    check_writable(out)
    check_model_output(out)
    if _first_process():  # torchrun: rank 0 writes the model file, and claims it
        claim_output(args, out)  # two runs into one model file: the second fails here
    device = device_for(args)
    data, axes = _read_images(args, paths)
    model, config = _run_to_resume(args, out, engine)
    if model is not None:  # a run continues with its own settings, on its own image
        source = out if args.resume is True else Path(args.resume)
        check_resume_fits(args, RESUME_DEFAULTS, model, source)
        check_resume_image(model, source, data, axes)
    preset = args.preset or default_preset(device)
    if config is None:
        config = _config(args, preset, engine)
    target = _targets(args, len(paths))
    noise = engine.NoiseCalibration.load(args.noise) if args.noise else None
    trainer = engine.Trainer(data, axes, config, target=target, model=model, device=device,
                             checkpoint_path=out, resume=model is not None, noise=noise)
    try:
        if not trainer.world.is_main:  # rank 0 reports, validates and writes
            with _ctrl_c_stops(trainer):
                for _ in trainer.iter_fit():
                    pass
            return EXIT_INTERRUPTED if trainer.model.run.unfinished is not None else 0
        if trainer.world.active:
            print(f"training on {trainer.world.size} processes ({trainer.world.backend})",
                  file=sys.stderr)
        if args.preset is None and model is None:  # said once the input is known to be usable
            where = "a CPU" if device.type == "cpu" else "a GPU"
            print(f"preset {preset} (the default on {where}: {PRESET_TEXT[preset]}; --preset "
                  "chooses another)", file=sys.stderr)
        with _ctrl_c_stops(trainer):
            train_with_bar(trainer)
    finally:
        trainer.world.leave()
    return _save_and_report(trainer, out, data, axes, args, device, engine)


def _save_and_report(trainer: Any, out: Path, data: Any, axes: str, args: argparse.Namespace,
                     device: Any, engine: Any) -> int:
    model = trainer.model
    if trainer.last_checkpoint_step != model.step:  # the last write failed (it warned): retry
        save_or_keep(model, out)
    if model.run.unfinished is not None:  # stopped before the end
        print(f"napari-gr2r: stopped at step {model.step} of {model.run.end}; saved the best "
              f"weights (step {model.best_step}) to {out}; run the same command with --resume "
              "to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"saved {out} ({model!r}, best step {model.best_step})")
    several = isinstance(data, list)
    print_estimate(model, data[0] if several else data, axes, seed=args.seed,
                   device=str(device), which=" (first input)" if several else "",
                   noise=engine.NoiseCalibration.load(args.noise) if args.noise else "fit")
    return 0
