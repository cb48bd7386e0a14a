"""What the subcommands share: one-line errors, progress bars, common arguments and checks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..engine.errors import GR2RError, InputError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

BAD_INPUT = (GR2RError, FileNotFoundError, FileExistsError, IsADirectoryError, PermissionError)
"""Errors that mean bad input: reported in one line on stderr with exit status 2."""


def run_reporting_errors(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """``run(args)``, with bad input and Ctrl-C turned into one line on stderr and an exit status."""
    try:
        return run(args)
    except BAD_INPUT as exc:
        print(f"napari-gr2r: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("napari-gr2r: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


# ---------------------------------------------------------------------------------- arguments
def add_device_argument(parser: argparse.ArgumentParser, described: bool = True) -> None:
    parser.add_argument("--device", default="auto",
                        help="auto, cpu, cuda, cuda:1 or mps" if described else None)


def add_overwrite_argument(parser: argparse.ArgumentParser,
                           help: str = "replace an existing output") -> None:
    parser.add_argument("--overwrite", action="store_true", help=help)


def check_output(args: argparse.Namespace, resumable: bool = False) -> Path:
    """``args.output``, refused when it is the input or exists (unless ``--overwrite``)."""
    out = Path(args.output)
    if out.resolve() == Path(args.input).resolve():
        raise InputError("The output would overwrite the input; choose another output path.")
    if out.exists() and not args.overwrite and not resumable:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it.")
    return out


def axes_for(args: argparse.Namespace, data: Any, meta: dict[str, Any],
             fallback: str | None = None) -> str:
    """The input's axes: ``--axes``, else the file's, else ``fallback``; refused if unknown."""
    if args.axes:
        return args.axes  # checked against the shape by the engine, with its own message
    axes = meta.get("axes") or fallback
    if axes is None or len(axes) != len(data.shape):
        raise InputError(
            f"The axes of {Path(args.input).name} (shape {tuple(data.shape)}) are not known; "
            "pass them with --axes, e.g. --axes ZYX."
        )
    return axes


# ------------------------------------------------------------------------------ progress bars
@contextmanager
def count_bar(unit: str, desc: str = "denoising") -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar on stderr; yields the ``progress(done, total)`` callback the engine calls."""
    from tqdm import tqdm

    with tqdm(unit=unit, file=sys.stderr, dynamic_ncols=True, desc=desc) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield progress


def _correlation_text(event: Any) -> str:
    if not event.noise_correlation:
        return ""
    return f", correlated between neighbouring pixels ({event.noise_correlation:.2f})"


def train_with_bar(trainer: Any) -> None:
    """Run ``trainer.iter_fit()`` to the end with a step bar, its losses and warnings on stderr."""
    from tqdm import tqdm

    from ..engine import CollapseDetected, TrainingFinished, TrainingProgress, TrainingStarted

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
