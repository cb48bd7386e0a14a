"""SIGTERM during the widget's runs: end them as Stop does, not by ending napari mid-step.

``kill``, a desktop session that logs out and cluster schedulers (napari on an interactive
node) send SIGTERM. napari leaves it to the default, which ends the process at once: a training
run loses everything since its last autosave. While a job runs, :class:`TermStops` puts a
Python handler in its place that asks the job to stop after its step (the best weights kept, as
Stop keeps them) and hands the rest to Qt's event loop; the handler before it is back when the
job ends, and from the first SIGTERM on, so a second SIGTERM acts as it did before.

Python runs a signal handler in the main thread between two bytecodes, possibly in the middle
of a Qt slot of the widget, so the handler sets thread-safe stop flags and schedules a call
(a zero-delay single-shot timer); it never touches a widget or waits for a lock. Under
``napari.run()`` the event loop wakes up for the signal (napari watches signals through a
wake-up socket); elsewhere the handler runs at the next Python call of the event loop, which a
training run's progress events provide every few steps.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QTimer


class TermStops:
    """While installed, SIGTERM calls ``stop`` (flags only) and then ``then`` on Qt's loop.

    Parameters
    ----------
    stop : callable
        Called in the signal handler: it may only set thread-safe flags.
    then : callable, optional
        Called on Qt's event loop soon after (a message for the user, say).
    """

    def __init__(self, stop: Callable[[], Any], then: Callable[[], Any] | None = None) -> None:
        self._stop, self._then = stop, then
        self._previous: Any = None
        self._installed = False
        self.received = False
        """True once a SIGTERM asked the job to stop."""

    def install(self) -> bool:
        """Put the handler in place (main thread only); False where that cannot be done."""
        if threading.current_thread() is not threading.main_thread() or \
                not hasattr(signal, "SIGTERM"):
            return False
        try:
            self._previous = signal.signal(signal.SIGTERM, self._on_term)
        except (ValueError, OSError):
            return False
        self._installed = True
        return True

    def restore(self) -> None:
        """Put the previous handler back (unless another one replaced this one since)."""
        if not self._installed:
            return
        self._installed = False
        if signal.getsignal(signal.SIGTERM) == self._on_term:
            previous = self._previous if self._previous is not None else signal.SIG_DFL
            signal.signal(signal.SIGTERM, previous)

    def _on_term(self, signum: int, frame: Any) -> None:
        self.received = True
        self.restore()  # a second SIGTERM acts as before
        self._stop()
        if self._then is not None:
            QTimer.singleShot(0, self._then)
