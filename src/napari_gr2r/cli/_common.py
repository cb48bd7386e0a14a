"""What the subcommands share: one-line errors, progress bars, common arguments and checks."""

from __future__ import annotations

import argparse
import math
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from ..engine.errors import (
    ConfigError,
    GR2RError,
    InputError,
    ProcessLostError,
    format_duration,
    one_line,
)
from ._signals import stop_requested, terminate_like_ctrl_c

EXIT_SOME_FAILED = 1
"""Several files were given and some of them failed (the others are done)."""
EXIT_FAILED = 1
"""The run failed without bad input: another process of a training run on several processes
ended."""
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

BAD_INPUT = (GR2RError, OSError)
"""Errors that mean bad input or an unusable file (missing, unreadable, a full disk):
reported in one line on stderr with exit status 2."""


INTERRUPTED = ("napari-gr2r: interrupted; no result was left half-written: run the same command "
               "again to resume (.zarr outputs, output folders and training with --resume "
               "continue where they stopped)")

CLI_NAMES = (
    (re.compile(r"\boverwrite=True\b"), "--overwrite"),
    (re.compile(r"\bresume=True\b"), "--resume"),
    (re.compile(r"\bnet_dims='(\w+)'"), r"--net-dims \1"),
    (re.compile(r"\bmethod='([\w-]+)'"), r"--method \1"),
    (re.compile(r"\b(target|axes|tile|steps|seed)=(?=[\s.,;)]|$)"), r"--\1"),
)
"""The engine's messages name its keyword arguments; on the command line they are flags."""


def cli_words(text: str) -> str:
    """An engine message in the command line's words: ``overwrite=True`` -> ``--overwrite``."""
    for pattern, flag in CLI_NAMES:
        text = pattern.sub(flag, text)
    return text


def _show_warning(message: Any, category: type, *args: Any, **kwargs: Any) -> None:
    """Warnings as one line each, in the command line's words (on a line of their own while
    a progress bar is drawn)."""
    from tqdm import tqdm

    tqdm.write(f"napari-gr2r: warning: {cli_words(one_line(message, kind=False))}",
               file=sys.stderr)


def run_reporting_errors(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """``run(args)``, with bad input, Ctrl-C and SIGTERM turned into one line on stderr and an
    exit status; warnings in one line each."""
    try:
        with terminate_like_ctrl_c(), warnings.catch_warnings(), ExitStack() as exits:
            warnings.showwarning = _show_warning
            args.exits = exits  # what the command claims is released when it ends
            return run(args)
    except ProcessLostError as exc:  # not bad input: another process of the run failed
        print(f"napari-gr2r: error: {cli_words(one_line(exc))}", file=sys.stderr)
        return EXIT_FAILED
    except InterruptedError as exc:  # a stop polled after its KeyboardInterrupt was dropped
        if not stop_requested():  # (an OSError, so before BAD_INPUT)
            print(f"napari-gr2r: error: {cli_words(one_line(exc))}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    except BAD_INPUT as exc:
        print(f"napari-gr2r: error: {cli_words(one_line(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MemoryError:
        print("napari-gr2r: error: not enough memory; denoise into a .zarr output (block by "
              "block) or pass a smaller --tile", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as exc:
        lost = _lost_process_behind(exc)
        if lost is not None:  # torchrun's SIGTERM, sent because the other process ended
            print(f"napari-gr2r: error: {cli_words(one_line(lost))}", file=sys.stderr)
            return EXIT_FAILED
        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED


def _lost_process_behind(exc: BaseException) -> ProcessLostError | None:
    """The :class:`ProcessLostError` that was being reported when ``exc`` interrupted it.
    torchrun ends every process of a run with SIGTERM once one of them has ended; arriving
    while the survivor unwinds its own report of the loss, the signal must not replace it."""
    seen = exc.__context__
    while seen is not None:
        if isinstance(seen, ProcessLostError):
            return seen
        seen = seen.__context__
    return None


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
                   which: str = "", noise: Any = "fit") -> Any:
    """Assess ``model`` on ``data`` without a clean image (:func:`engine.assess`), print the
    estimated PSNR in one line (and the structure warning when the residual holds signal),
    and return the report. ``which``: a note on the image, e.g. ``" (first input)"``."""
    from .. import engine
    from ..engine.quality.report import STRUCTURE_MESSAGE, UNMEASURED_MESSAGE, worse_message

    report = engine.assess(model, data, axes, seed=seed, device=device, noise=noise)
    print(f"estimated PSNR of the denoised image{which}: {report.psnr_text()} (data range "
          f"{report.data_range:.4g}; without a clean image: 'napari-gr2r assess' for details)")
    if report.noise.level.correlation_unmeasured:
        print(UNMEASURED_MESSAGE)
    if report.worse_than_input:
        print(worse_message(report))
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


CORRELATION_TIP = (
    "tip: the noise's correlation was fitted on the image, where fine structure can pass for "
    "it; repeated captures of a still field measure it exactly: 'napari-gr2r calibrate "
    "frames.tif -o camera.noise.json', then train with --noise camera.noise.json")
"""Printed when training on correlated noise fitted on the image: a calibration trains a
better model where the image's texture biases the fitted correlation
(docs/estimate-accuracy.md, "Noise from a calibration")."""


def _correlation_text(event: Any) -> str:
    if not event.noise_correlation:
        return ""
    return f", correlated between neighbouring pixels ({event.noise_correlation:.2f})"


def train_with_bar(trainer: Any, data_range: float | None = None) -> None:
    """Run ``trainer.iter_fit()`` to the end with a step bar, its losses and warnings on stderr.

    After the first progress event (``event_every`` steps) the time of the whole run is
    estimated from the steps measured so far and printed; the bar ends in one 100% line.
    The bar's estimated PSNR is for the data's normalised range (what the final estimate of
    ``train`` reports), or for ``data_range`` where given (the demo's reference range), so
    that it reads on the same scale as the PSNR printed after training.
    """
    from tqdm import tqdm

    from ..engine import CollapseDetected, TrainingFinished, TrainingProgress, TrainingStarted

    bar = None
    start = 0
    estimated = False
    # training estimates its PSNR for a range of 1 in normalised units, norm.scale(0) here
    shift = 0.0 if data_range is None else \
        20 * math.log10(float(data_range) / trainer.norm.scale(0))
    try:
        for event in trainer.iter_fit():
            if isinstance(event, TrainingStarted):
                seeing = (f" seeing {event.context} neighbouring plane(s) on each side"
                          if event.context else "")
                print(f"training {event.networks} ({event.n_parameters:,} parameters)"
                      f"{seeing} on {event.device}, patches {event.patch_shape}, estimated noise SD "
                      f"{event.noise_sd:.3g}{_correlation_text(event)}", file=sys.stderr)
                if event.noise_correlation and event.noise_source == "fit":
                    print(CORRELATION_TIP, file=sys.stderr)
                start = event.step
                bar = tqdm(total=event.total_steps - start, unit="step",
                           file=sys.stderr, dynamic_ncols=True)
            elif isinstance(event, TrainingProgress) and bar is not None:
                postfix = {"loss": f"{event.loss:.4g}", "patch/s": f"{event.patches_per_s:.0f}"}
                if event.val_loss is not None:
                    postfix["val"] = f"{event.val_loss:.4g}"
                if event.estimated_psnr is not None:
                    postfix["est. PSNR"] = f"{event.estimated_psnr + shift:.1f} dB"
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
                               f"{bar.total} steps (a first guess from the first {done}; the bar's "
                               "time left is refined as the run goes)",
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


# --------------------------------------------------------------------------------- model files
MODEL_SUFFIX = ".pt"


def check_model_output(out: Path) -> None:
    """A model is written only under a model file's name (``.gr2r.pt``): never over an image
    (``-o precious.tif --overwrite``) or under a name nothing would open as a model."""
    if out.suffix.lower() != MODEL_SUFFIX:
        stem = out.name[: -len(out.suffix)] if out.suffix else out.name
        raise InputError(f"-o {out.name}: a model file's name ends in .gr2r.pt (e.g. "
                         f"{stem}.gr2r.pt); choose such a name, so that no image or other file "
                         "is replaced by a model.")


def claim_output(args: argparse.Namespace, out: Path) -> None:
    """Claim ``out`` for this run until the command ends: a second run writing the same file
    at the same time fails at once, naming this one."""
    from ..engine.io.outputs import OutputClaim

    claim = OutputClaim(str(out)).acquire()
    exits = getattr(args, "exits", None)
    if exits is None:  # called outside run_reporting_errors: released when the process ends
        import atexit

        atexit.register(claim.release)
    else:
        exits.callback(claim.release)


RESUMED_SETTINGS = (("preset", "--preset"), ("method", "--method"),
                    ("noise_sigma", "--noise-sigma"), ("seed", "--seed"),
                    ("net_dims", "--net-dims"))


def check_resume_fits(args: argparse.Namespace, parser_defaults: dict[str, Any], model: Any,
                      source: Path) -> None:
    """``--resume`` continues a run with its own settings: flags that would change them are
    refused (not silently dropped)."""
    changed = []
    for name, flag in RESUMED_SETTINGS:
        given = getattr(args, name, None)
        if given is None or given == parser_defaults.get(name):
            continue  # not given (or left at its default): the run's own value
        if given != getattr(model.config, name, None):
            changed.append(f"{flag} {given}")
    if changed:
        raise InputError(
            f"--resume continues the run in {source.name} with its own settings; "
            f"{', '.join(changed)} would change them. Leave them out to continue it, or start a "
            "new run without --resume (a new -o, or --overwrite)."
        )


def check_resume_image(model: Any, source: Path, data: Any, axes: str) -> None:
    """``--resume`` on another image is refused: a run continues on the image it started on
    (its shape and its range of values, which the normalisation was fitted to)."""
    from ..engine.io.provenance import range_message

    images = data if isinstance(data, list) else [data]
    shape = tuple(int(n) for n in images[0].shape)
    if model.data_shape is not None and tuple(model.data_shape) != shape and len(images) == 1:
        raise InputError(
            f"--resume: the run in {source.name} trained on an image of shape "
            f"{tuple(model.data_shape)}, and this one has shape {shape}; resume it on its own "
            "image, or start a new run on this one (without --resume)."
        )
    message = range_message(model.open_source(images[0], axes), model.normalization.low,
                            model.normalization.high, "this image")
    if message is not None:
        raise InputError(f"--resume: {source.name} continues a run on other images: {message}"
                         " To train on this image, start a new run without --resume.")


def save_or_keep(model: Any, out: Path) -> None:
    """Save ``model`` to ``out``; when that fails (a full disk), save it in the temporary
    folder or the home folder instead and say where: trained weights are never lost."""
    import tempfile

    from ..engine import save_model
    from ..engine.errors import WriteError

    try:
        save_model(model, out)
        return
    except OSError as exc:  # WriteError (a full disk) or a path that cannot be made
        first = exc
    for folder in (Path(tempfile.gettempdir()), Path.home()):
        spare = folder / f"rescued-{out.name}"
        if spare.resolve() == out.resolve():
            continue
        try:
            save_model(model, spare)
        except (WriteError, OSError):
            continue
        raise WriteError(f"{one_line(first)} The trained model was saved to {spare} instead; "
                         "move it where you want it (or run with --resume from there).")
    raise first
