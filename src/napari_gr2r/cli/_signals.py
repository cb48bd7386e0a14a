"""Ctrl-C and SIGTERM for the command line: SIGTERM (a cluster scheduler's, ``kill``'s) ends a
run as Ctrl-C does, and both are remembered, because Python prints and drops a
KeyboardInterrupt raised while a finalizer or a weakref callback runs: the commands poll
:func:`stop_requested` between tiles, blocks and files, and stop there."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_STOP = threading.Event()
"""Set by Ctrl-C or SIGTERM: a KeyboardInterrupt raised while Python runs a finalizer or a
weakref callback is printed and dropped, so the commands also poll this (``stop_requested``)
between tiles and blocks, and stop there."""


def stop_requested() -> bool:
    """Whether Ctrl-C or SIGTERM came during this command (the engine's ``should_stop``)."""
    return _STOP.is_set()


@contextmanager
def terminate_like_ctrl_c() -> Iterator[None]:
    """SIGTERM (a cluster scheduler's, ``kill``'s) ends a run the way Ctrl-C does; both are
    remembered in ``_STOP``."""
    def on_term(signum: int, frame: Any) -> None:
        _STOP.set()
        handler = signal.getsignal(signal.SIGINT)  # train's: stop after the step and save
        if not callable(handler):
            raise KeyboardInterrupt
        handler(signal.SIGINT, frame)

    def on_int(signum: int, frame: Any) -> None:
        _STOP.set()
        raise KeyboardInterrupt

    _STOP.clear()
    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except (ValueError, AttributeError):  # not the main thread, or no SIGTERM here
        yield
        return
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:
        signal.signal(signal.SIGINT, on_int)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if previous_int is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous_int)
