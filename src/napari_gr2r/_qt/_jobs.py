"""The one kind of background job of the widget, its panels and the menu commands.

A :class:`Job` runs a plain function or generator over numpy arrays and
:mod:`napari_gr2r.engine` in a napari ``thread_worker``: what it yields and returns arrives on
the main thread through the callbacks given to :meth:`Job.start`. Every job has a stop flag
that the function polls (:meth:`Job.should_stop`, passed as the engine's ``should_stop``), is
``running`` from :meth:`~Job.start` until its worker has finished, and can be abandoned when
the widget or the viewer closes (its results are then dropped). Inside the worker, torch uses
one core fewer than the process has (:func:`napari_gr2r.engine.devices.capped_threads`), so
that napari stays responsive.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import wraps
from typing import Any

from napari.qt.threading import create_worker
from napari.utils.notifications import notification_manager
from qtpy.QtCore import QObject, Signal

from napari_gr2r.engine.devices import capped_threads
from napari_gr2r.engine.errors import GR2RError

from ._signals import TermStops

ABANDON_WAIT_S = 5.0
"""How long closing waits for an abandoned job's thread to end (it stops at its next check)."""


class WorkerFailure(Exception):
    """An unexpected failure in a worker, carrying the original message.

    superqt's workers treat a ``RuntimeError`` escaping the function as a deleted worker
    and then emit neither ``errored`` nor ``finished``; wrapping it keeps both signals.
    """


@dataclass
class Refused:
    """A job the engine refused (bad input or settings), with its one-line message for the user.

    Returned instead of raised, so that no traceback reaches the terminal for a choice the
    user can fix.
    """

    message: str


def in_worker(func: Callable[..., Any], on_exit: Callable[[], Any] | None = None,
              ) -> Callable[..., Any]:
    """``func`` with capped torch threads, a refusal of the engine (``GR2RError``) returned
    as :class:`Refused`, a ``RuntimeError`` raised as :class:`WorkerFailure`, and ``on_exit``
    called when it ends (a generator function stays one, so napari's worker relays its yields).
    """
    if inspect.isgeneratorfunction(func):
        @wraps(func)
        def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                with capped_threads():
                    return (yield from func(*args, **kwargs))
            except GR2RError as exc:
                return Refused(str(exc))
            except RuntimeError as exc:
                raise WorkerFailure(str(exc)) from exc
            finally:
                if on_exit is not None:
                    on_exit()
        return generator

    @wraps(func)
    def function(*args: Any, **kwargs: Any) -> Any:
        try:
            with capped_threads():
                return func(*args, **kwargs)
        except GR2RError as exc:
            return Refused(str(exc))
        except RuntimeError as exc:
            raise WorkerFailure(str(exc)) from exc
        finally:
            if on_exit is not None:
                on_exit()
    return function


class Job:
    """A computation in a thread worker that can be asked to stop from any thread.

    Parameters
    ----------
    kind : str
        What it does (``"train"``, ``"denoise"``, ``"assess"``, ``"files"``, ``"export"``): the
        widget's state keeps one running job per kind.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._stop = threading.Event()
        self._ended = threading.Event()
        self.worker: Any = None
        self.done = False
        """True once the worker has finished (or the job was abandoned)."""
        self._term: TermStops | None = None

    # ---------------------------------------------------------------------------- stopping
    def should_stop(self) -> bool:
        """Polled by the running function (the engine's ``should_stop``)."""
        return self._stop.is_set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        """Ask the function to end at its next check; what it has done so far is kept."""
        self._stop.set()

    def stop_from_signal(self) -> None:
        """:meth:`request_stop` from a signal handler: flags only, no lock, no widget."""
        self._stop.set()

    def stop_on_sigterm(self, then: Callable[[], Any] | None = None) -> bool:
        """While the job runs, SIGTERM stops it as Stop does (:meth:`stop_from_signal`), then
        ``then`` runs on Qt's event loop; the previous handler is back when the job ends (see
        :mod:`._signals`). False where no handler can be installed (not the main thread)."""
        if self.done:
            return False
        self._term = TermStops(self.stop_from_signal, then)
        return self._term.install()

    @property
    def stopped_by_sigterm(self) -> bool:
        return self._term is not None and self._term.received

    def _restore_sigterm(self) -> None:
        if self._term is not None:
            self._term.restore()

    # ----------------------------------------------------------------------------- running
    @property
    def running(self) -> bool:
        return self.worker is not None and not self.done

    def start(self, func: Callable[..., Any], *args: Any,
              yielded: Callable[[Any], Any] | None = None,
              returned: Callable[[Any], Any] | None = None,
              errored: Callable[[BaseException], Any] | None = None,
              finished: Callable[[], Any] | None = None,
              refused: Callable[[str], Any] | None = None,
              warned: Callable[[str, type], Any] | None = None, **kwargs: Any) -> Any:
        """Run ``func(*args, **kwargs)`` in a worker; the callbacks run on the main thread.

        ``refused`` gets the message of a :class:`Refused` result (a ``GR2RError`` in the
        worker); without it, ``returned`` gets the :class:`Refused`. ``warned`` gets the text
        and category of each warning the function issues; the project's own warnings are
        also shown as napari notifications. Returns the started worker.
        """
        worker = create_worker(in_worker(func, on_exit=self._ended.set), *args,
                               _start_thread=False, **kwargs)
        if yielded is not None:
            worker.yielded.connect(yielded)
        worker.warned.connect(_notify)
        if warned is not None:
            worker.warned.connect(lambda shown: warned(str(shown[0]), shown[1]))

        def on_returned(result: Any) -> None:
            if isinstance(result, Refused) and refused is not None:
                refused(result.message)
            elif returned is not None:
                returned(result)

        worker.returned.connect(on_returned)
        if errored is not None:
            worker.errored.connect(errored)
        worker.finished.connect(self._on_finished)
        if finished is not None:
            worker.finished.connect(finished)
        self.worker = worker
        worker.start()
        return worker

    def _on_finished(self) -> None:
        self.done = True
        self._restore_sigterm()

    def abandon(self) -> None:
        """Stop the job and drop whatever it still delivers (its widget or viewer is closing).

        A finished job's worker is left alone: Qt may already have deleted its signals.
        """
        self._restore_sigterm()
        if self.done:
            return
        worker = self.worker
        if worker is not None:
            for name in ("yielded", "returned", "errored", "finished"):
                signal = getattr(worker, name, None)
                if signal is not None:
                    with contextlib.suppress(TypeError, RuntimeError):
                        signal.disconnect()
        # the stop flag ends the function within a step or a tile, and its cleanup (the
        # engine's, ``on_exit``) runs in its thread. napari's ``quit()`` is not used: it
        # leaves a generator suspended at its last yield, its ``finally`` blocks unrun until
        # the generator is garbage-collected, so :meth:`wait` would always time out.
        self.request_stop()
        self.done = True

    def wait(self, timeout_s: float = ABANDON_WAIT_S) -> bool:
        """Block until the job's function has ended (True), at most ``timeout_s`` (False).

        Closing waits for abandoned jobs: a worker thread that outlives the window would emit
        its last signals on deleted Qt objects.
        """
        return self.worker is None or self._ended.wait(timeout_s)


def _notify(shown: tuple) -> None:
    """Show a warning of the project's (its category is one of the engine's) issued in a
    worker as a napari notification, once (napari skips one it has shown).

    napari's workers are meant to relay every warning, but in the versions where their
    notifying mix-in is never initialised nothing reaches the notifications.
    """
    if getattr(shown[1], "__module__", "").startswith("napari_gr2r"):
        notification_manager.receive_warning(*shown)


class ProgressRelay(QObject):
    """Carries ``(done, total)`` from a worker thread's callback to the main thread."""

    progressed = Signal(int, int)

    def __call__(self, done: int, total: int) -> None:
        self.progressed.emit(int(done), int(total))
