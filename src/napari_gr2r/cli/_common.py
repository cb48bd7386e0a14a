"""What the subcommands share: one-line errors, progress bars, common arguments and checks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..engine.errors import ConfigError, GR2RError, InputError, format_duration, one_line

EXIT_SOME_FAILED = 1
"""Several files were given and some of them failed (the others are done)."""
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

BAD_INPUT = (GR2RError, OSError)
"""Errors that mean bad input or an unusable file (missing, unreadable, a full disk):
reported in one line on stderr with exit status 2."""


def run_reporting_errors(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """``run(args)``, with bad input and Ctrl-C turned into one line on stderr and an exit status."""
    try:
        return run(args)
    except BAD_INPUT as exc:
        print(f"napari-gr2r: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MemoryError:
        print("napari-gr2r: error: not enough memory; denoise into a .zarr output (block by "
              "block) or pass a smaller --tile", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("napari-gr2r: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


# ---------------------------------------------------------------------------------- arguments
def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto",
                        help="where the network runs: auto (a CUDA GPU, then Apple MPS, then the "
                        "CPU), cpu, cuda, cuda:1 or mps (default: %(default)s)")


def device_for(args: argparse.Namespace) -> Any:
    """``--device`` as a torch device, checked before any work starts."""
    from ..engine import resolve_device

    try:
        return resolve_device(args.device)
    except GR2RError as exc:
        raise ConfigError(f"--device {args.device}: {exc}") from None


def add_overwrite_argument(parser: argparse.ArgumentParser,
                           help: str = "replace an existing output (default: refuse)") -> None:
    parser.add_argument("--overwrite", action="store_true", help=help)


def check_output(args: argparse.Namespace, resumable: bool = False,
                 inputs: list[Any] | None = None) -> Path:
    """``args.output``, refused when it is, lies inside or contains the input (``inputs``,
    default ``[args.input]``), or exists (unless ``--overwrite``)."""
    from ..engine.io.outputs import check_not_input

    out = Path(args.output)
    check_not_input(out, inputs if inputs is not None else [args.input])
    if out.exists() and not args.overwrite and not resumable:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it.")
    return out


def axes_for(args: argparse.Namespace, data: Any, meta: dict[str, Any],
             fallback: str | None = None, path: Any = None) -> str:
    """The axes of the input (``path``, default ``args.input``): ``--axes``, else the file's,
    else ``fallback``; refused if unknown."""
    if args.axes:
        return args.axes  # checked against the shape by the engine, with its own message
    axes = meta.get("axes") or fallback
    if axes is None or len(axes) != len(data.shape):
        name = Path(path if path is not None else args.input).name
        raise InputError(
            f"The axes of {name} (shape {tuple(data.shape)}) are not known; "
            "pass them with --axes, e.g. --axes ZYX."
        )
    return axes


def print_estimate(model: Any, data: Any, axes: str, *, seed: int, device: str,
                   which: str = "") -> Any:
    """Assess ``model`` on ``data`` without a clean image (:func:`engine.assess`), print the
    estimated PSNR in one line (and the structure warning when the residual holds signal),
    and return the report. ``which``: a note on the image, e.g. ``" (first input)"``."""
    from .. import engine
    from ..engine.quality.estimate import STRUCTURE_MESSAGE

    report = engine.assess(model, data, axes, seed=seed, device=device)
    print(f"estimated PSNR of the denoised image{which}: {report.psnr():.2f} dB (data range "
          f"{report.data_range:.4g}; without a clean image: 'napari-gr2r assess' for details)")
    if report.signal_removed:
        print(STRUCTURE_MESSAGE)
    return report


# ------------------------------------------------------------------------------ progress bars
BAR_DELAY_S = 0.5
"""Bars appear only after this long: an error at once leaves no bar before its message."""


@contextmanager
def count_bar(unit: str, desc: str = "denoising") -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar on stderr; yields the ``progress(done, total)`` callback the engine calls.

    The bar is made at the first call, when the total is known (never an empty
    ``0tile [00:00, ?tile/s]`` bar), and shown after :data:`BAR_DELAY_S`.
    """
    from tqdm import tqdm

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, initial=done, unit=unit, file=sys.stderr,
                       dynamic_ncols=True, desc=desc, delay=BAR_DELAY_S)
            return
        bar.total = total
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        if bar is not None:
            bar.close()


def _correlation_text(event: Any) -> str:
    if not event.noise_correlation:
        return ""
    return f", correlated between neighbouring pixels ({event.noise_correlation:.2f})"


def train_with_bar(trainer: Any) -> None:
    """Run ``trainer.iter_fit()`` to the end with a step bar, its losses and warnings on stderr.

    After the first progress event (``event_every`` steps) the time of the whole run is
    estimated from the steps measured so far and printed; the bar ends in one 100% line.
    """
    from tqdm import tqdm

    from ..engine import CollapseDetected, TrainingFinished, TrainingProgress, TrainingStarted

    bar = None
    start = 0
    estimated = False
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
                postfix = {"loss": f"{event.loss:.4g}", "patch/s": f"{event.patches_per_s:.0f}"}
                if event.val_loss is not None:
                    postfix["val"] = f"{event.val_loss:.4g}"
                if event.estimated_psnr is not None:
                    postfix["est. PSNR"] = f"{event.estimated_psnr:.1f} dB"
                bar.set_postfix(postfix, refresh=False)
                done = event.step - start
                if done >= bar.total:
                    bar.n = done  # shown once, by close(): one 100% line
                else:
                    bar.update(done - bar.n)
                if not estimated and done < bar.total:
                    estimated = True
                    total_s = event.elapsed_s / max(done, 1) * bar.total
                    tqdm.write(f"estimated time: about {format_duration(total_s)} for "
                               f"{bar.total} steps (measured over the first {done})",
                               file=sys.stderr)
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
