"""The ``napari-gr2r`` command line: ``train``, ``denoise``, ``assess``, ``calibrate``, ``export``
and ``demo``.

Bad input ends with a one-line message on stderr and exit status 2, never a traceback.

Each subcommand is a module of this package with ``add_parser(subparsers)``, which declares its
arguments, and ``run(args) -> int``, which does the work; a new subcommand is a new module
listed in :data:`SUBCOMMANDS` (the order of ``napari-gr2r --help``). Helpers shared by several
subcommands (errors, progress bars, common arguments) live in :mod:`._common`.
"""

from __future__ import annotations

import argparse

from .. import __version__
from . import assess, calibrate, demo, denoise, export, train
from ._common import EXIT_BAD_INPUT, run_reporting_errors
from .demo import psnr

SUBCOMMANDS = (train, denoise, assess, calibrate, export, demo)
"""The subcommand modules, in the order ``--help`` lists them."""

__all__ = ["EXIT_BAD_INPUT", "SUBCOMMANDS", "build_parser", "main", "psnr"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-gr2r",
        description="Self-supervised GR2R denoising of microscopy images.",
    )
    parser.add_argument("--version", action="version", version=f"napari-gr2r {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(subparsers).set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_reporting_errors(args.run, args)
