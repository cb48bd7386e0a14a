"""The command line as a new user meets it: the default preset and its time estimate, the help
texts, tidy progress bars, and clean errors end to end (a real process, exit status 2).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import numpy as np
import pytest
import tifffile
import torch

from napari_gr2r import engine
from napari_gr2r.cli import build_parser, main
from tests.helpers import tiny_model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    noisy = np.random.default_rng(0).normal(100, 10, (48, 48)).astype(np.float32)
    tifffile.imwrite(folder / "in.tif", noisy)
    engine.save_model(tiny_model(), folder / "m.gr2r.pt")
    return folder


def test_the_default_preset_follows_the_device():
    from napari_gr2r.cli.train import default_preset

    assert default_preset(torch.device("cpu")) == "fast"
    assert default_preset(torch.device("cuda:0")) == "balanced"
    assert default_preset(torch.device("mps")) == "balanced"


def test_train_says_which_preset_and_how_long(folder, capsys):
    out = folder / "t.gr2r.pt"
    assert main(["train", str(folder / "in.tif"), "--axes", "YX", "--steps", "20",
                 "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "preset fast (the default on a CPU" in err
    match = re.search(r"estimated time: about ([\d.]+) (s|min|h) for 20 steps", err)
    assert match, err
    assert "a first guess" in err  # refined by the bar as the run goes, not a promise
    assert engine.load_model(out).config.preset == "fast"


def test_training_ends_in_one_100_percent_line(folder, capsys):
    assert main(["train", str(folder / "in.tif"), "--axes", "YX", "--preset", "fast",
                 "--steps", "20", "-o", str(folder / "u.gr2r.pt")]) == 0
    err = capsys.readouterr().err
    finals = {s.strip() for s in re.split(r"[\r\n]", err) if "100%" in s}
    assert len(finals) == 1, finals


def test_denoise_shows_no_empty_bar_and_at_most_one_100_percent_line(folder, capsys):
    assert main(["denoise", str(folder / "in.tif"), "--model", str(folder / "m.gr2r.pt"),
                 "-o", str(folder / "o.tif")]) == 0
    err = capsys.readouterr().err
    assert "0tile [" not in err
    assert "?tile/s" not in err
    assert len({s.strip() for s in re.split(r"[\r\n]", err) if "100%" in s}) <= 1


def _actions(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for _, inner in _actions(sub):
                    yield name, inner
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield "", action


def test_help_documents_every_option_and_its_default(capsys):
    parser = build_parser()
    seen = 0
    for command, action in _actions(parser):
        if not action.option_strings:  # the positional input and the command
            assert action.help, (command, action.dest)
            continue
        seen += 1
        assert action.help, (command, action.option_strings)
        assert len(action.help) > 10, (command, action.option_strings)
        has_default = action.default not in (None, False, argparse.SUPPRESS) or \
            action.dest in ("preset",)
        if has_default and not action.required:
            text = action.help % {"default": action.default} if "%(" in action.help else \
                action.help
            assert "default" in text, (command, action.option_strings, text)
    assert seen >= 20
    for command in ("train", "denoise", "demo"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        assert "(default: " in capsys.readouterr().out


def test_a_real_process_gets_one_line_and_exit_2(folder):
    cases = [["--model", str(folder / "in.tif")]]  # the in-process battery has the others
    cases.append(["--device", "tpu" if torch.cuda.is_available() else "cuda"])
    for extra in cases:
        args = ["denoise", str(folder / "in.tif"), "-o", str(folder / "x.tif")]
        if "--model" not in extra:
            args += ["--model", str(folder / "m.gr2r.pt")]
        result = subprocess.run([sys.executable, "-m", "napari_gr2r", *args, *extra],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 2, (extra, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    assert not (folder / "x.tif").exists()


def test_a_stop_signal_during_a_lost_process_report_keeps_the_report(capsys):
    """torchrun sends SIGTERM to the survivor of a run whose other process ended; arriving
    while the survivor unwinds its report of the loss, it must not turn it into 'interrupted'."""
    from napari_gr2r.cli._common import run_reporting_errors
    from napari_gr2r.engine.errors import ProcessLostError

    def lost_then_terminated(args):
        try:
            raise ProcessLostError("Another of the 2 training processes ended. Saved to m.pt; "
                                   "run the same command with resume=True to continue.")
        finally:
            raise KeyboardInterrupt  # the signal, during the process group's teardown

    def interrupted(args):
        raise KeyboardInterrupt

    assert run_reporting_errors(lost_then_terminated, argparse.Namespace()) == 1
    assert capsys.readouterr().err.strip() == (
        "napari-gr2r: error: Another of the 2 training processes ended. Saved to m.pt; run the "
        "same command with --resume to continue.")
    assert run_reporting_errors(interrupted, argparse.Namespace()) == 130
    assert capsys.readouterr().err.startswith("napari-gr2r: interrupted")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_stop_signal_dropped_in_a_finalizer_still_stops_denoising(capsys):
    """Python prints and drops a KeyboardInterrupt raised while a finalizer runs; the signal is
    remembered, and denoising stops at its next tile with the interrupted line and status 130."""
    import os
    import signal

    from napari_gr2r.cli._common import EXIT_INTERRUPTED, run_reporting_errors
    from napari_gr2r.cli._signals import stop_requested

    class SignalledWhileCollected:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)  # the handler's KeyboardInterrupt is dropped

    image = np.random.default_rng(0).uniform(100, 1100, (96, 96)).astype(np.float32)

    def command(args):
        SignalledWhileCollected()
        engine.denoise(tiny_model(), image, "YX", tile=32, should_stop=stop_requested)
        return 0

    assert run_reporting_errors(command, argparse.Namespace()) == EXIT_INTERRUPTED
    assert "interrupted" in capsys.readouterr().err
    # the next command starts afresh
    assert run_reporting_errors(lambda args: int(stop_requested()), argparse.Namespace()) == 0
