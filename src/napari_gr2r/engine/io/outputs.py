"""Where a result may be written: never over the input, never into a store another run writes.

- :func:`check_not_input` (:func:`overlap_message`: the reason as text) refuses an output
  that is the input, lies inside it (``in.zarr/0``
  of an OME-Zarr input, a file inside an input store) or contains it (the folder holding the
  input), whatever ``overwrite`` says: writing there would destroy the input.
- :class:`OutputClaim` is an exclusive claim on an output store for one run: a lock file
  beside the store (``.NAME.napari-gr2r-lock``, created atomically) with the claiming
  process's id, host and a random token. A second run fails at once with a message naming
  the first; a claim left by a process that no longer runs (on this host) is taken over.
  The token is also recorded in the store's attributes and checked before each block is
  marked done (:mod:`.outofcore.store`), so a run whose claim was taken over stops instead
  of mixing two models' pixels.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any

from ..errors import OutputError
from .atomic import process_alive
from .sources import is_url

LOCK_SUFFIX = ".napari-gr2r-lock"
UNREADABLE_LOCK_STALE_S = 60
"""A lock file without a readable record (its writer was killed at once) is stale after this."""


def _normal(location: str | os.PathLike) -> str:
    location = os.fspath(location)
    if is_url(location):
        return location.rstrip("/")
    return str(Path(location).resolve())


def store_location(arr: Any) -> str | None:
    """Where a zarr array (or memory-mapped file) lives: a resolved path or a URL, or None
    for in-memory stores and arrays of unknown origin."""
    filename = getattr(arr, "filename", None)  # numpy.memmap (a Path when opened with one)
    if isinstance(filename, (str, os.PathLike)):
        return _normal(filename)
    store = getattr(arr, "store", None)
    if store is None:
        return None
    path = str(getattr(arr, "path", "") or "")
    root = getattr(store, "root", None)  # zarr's LocalStore
    if root is not None:
        return _normal(Path(root) / path)
    fs, base = getattr(store, "fs", None), getattr(store, "path", None)  # FsspecStore
    if fs is not None and isinstance(base, str):
        protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
        return f"{protocol}://{base.strip('/')}/{path}".rstrip("/")
    return None


def _relation(out: str, inp: str) -> str | None:
    """``"is"``, ``"inside"`` or ``"contains"`` when the two locations overlap, else None."""
    if is_url(out) != is_url(inp):
        return None
    if is_url(out):
        if out == inp:
            return "is"
        if out.startswith(inp + "/"):
            return "inside"
        return "contains" if inp.startswith(out + "/") else None
    a, b = Path(out), Path(inp)
    if a == b:
        return "is"
    if b in a.parents:
        return "inside"
    return "contains" if a in b.parents else None


def overlap_message(out: str | os.PathLike, inputs: list[str | os.PathLike | None], *,
                    same: str | None = None, contains: bool = True) -> str | None:
    """Why ``out`` may not be written (it is, lies inside or contains one of ``inputs``), or
    None. ``same`` replaces the message for an output that is the input; ``contains=False``
    allows an output folder that holds an input (the results get other names there)."""
    target = _normal(out)
    for given in inputs:
        if given is None:
            continue
        inp = _normal(given)
        relation = _relation(target, inp)
        if relation == "is":
            return same or (f"The output {os.fspath(out)} is the input; choose another output "
                            "path.")
        if relation == "inside":
            return (f"The output {os.fspath(out)} lies inside the input {inp}; writing there "
                    f"would change the input. Choose another output path, outside {inp}.")
        if relation == "contains" and contains:
            return (f"The output {os.fspath(out)} contains the input {inp}; writing there would "
                    "replace the input. Choose another output path.")
    return None


def check_not_input(out: str | os.PathLike, inputs: list[str | os.PathLike | None], *,
                    same: str | None = None, contains: bool = True) -> None:
    """Raise :class:`OutputError` with :func:`overlap_message`'s reason, if any."""
    reason = overlap_message(out, inputs, same=same, contains=contains)
    if reason is not None:
        raise OutputError(reason)


def lock_path(location: str) -> Path | None:
    """The lock file of an output store (None for URLs: object stores have no atomic create)."""
    if is_url(location):
        return None
    path = Path(location).resolve()
    return path.parent / f".{path.name}{LOCK_SUFFIX}"


class OutputClaim:
    """One run's exclusive claim on an output store (see the module's docstring).

    Use :meth:`acquire`, then :meth:`release` when the run ends (also on errors); the claim
    is a context manager too. ``folder``: the output is a folder of results, whose lock file
    is a hidden file inside it.
    """

    def __init__(self, location: str | None, folder: bool = False) -> None:
        self.location = location
        self.lock = lock_path(location) if location is not None else None
        if folder and location is not None and self.lock is not None:
            # a folder of results is claimed from inside: its parent may not be writable
            self.lock = Path(location).resolve() / LOCK_SUFFIX
        self.record = {"token": secrets.token_hex(8), "pid": os.getpid(),
                       "host": socket.gethostname(),
                       "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        self._held = False

    @property
    def token(self) -> str:
        return self.record["token"]

    def acquire(self) -> OutputClaim:
        if self.lock is None:
            return self
        try:
            self.lock.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"Cannot write {self.location}: {exc.strerror or exc}.") from None
        for _ in range(3):
            try:
                fd = os.open(self.lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except PermissionError:
                raise OutputError(f"Cannot write {self.location}: no permission to write in "
                                  f"{self.lock.parent}; choose another output.") from None
            except FileExistsError:
                holder = _read_lock(self.lock)
                if _stale(self.lock, holder):
                    self.lock.unlink(missing_ok=True)
                    continue
                raise OutputError(in_use_message(self.location, holder, self.lock)) from None
            with os.fdopen(fd, "w") as fh:
                json.dump(self.record, fh)
            self._held = True
            return self
        raise OutputError(in_use_message(self.location, _read_lock(self.lock), self.lock))

    def release(self) -> None:
        if self._held and self.lock is not None:
            if _read_lock(self.lock).get("token") == self.token:
                self.lock.unlink(missing_ok=True)
            self._held = False

    def __enter__(self) -> OutputClaim:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def in_use_message(location: Any, holder: dict[str, Any], lock: Path | None = None) -> str:
    who = (f"process {holder.get('pid', '?')} on {holder.get('host', '?')}, since "
           f"{holder.get('started', '?')}")
    advice = "wait for it to end or write elsewhere"
    if lock is not None:  # a lock is only ever left by a run killed on another machine
        advice += (f"; if that run no longer exists, delete the hidden file ending in "
                   f"{LOCK_SUFFIX} beside or inside {Path(os.fspath(location)).name}")
    return f"{location} is being written by another napari-gr2r run ({who}); {advice}."


def _read_lock(lock: Path) -> dict[str, Any]:
    try:
        record = json.loads(lock.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _stale(lock: Path, holder: dict[str, Any]) -> bool:
    if not holder:
        try:
            return time.time() - lock.stat().st_mtime > UNREADABLE_LOCK_STALE_S
        except OSError:
            return True
    pid = holder.get("pid")
    return holder.get("host") == socket.gethostname() and isinstance(pid, int) and \
        not process_alive(pid)
