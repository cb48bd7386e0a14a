"""Atomic file writes: a temporary file beside the target, renamed over it when complete.

Shared by model files (:mod:`.checkpoint`) and images written by :mod:`napari_gr2r.io`.

- A kill at any moment leaves either the old file or the new one, never a partial file.
- The file gets the permissions a plain ``open(path, "w")`` would give it: those of the file
  it replaces, else ``0o666`` less the user's umask (the operating system applies the umask
  when the temporary is created), so colleagues on a shared server can read it when the
  umask says so.
- A temporary left by a killed process is removed by the next write to the same target:
  temporaries are named ``.NAME.PID.RANDOM.tmp``, and one whose process no longer runs is
  stale. (On a file system shared by several machines a process of another machine looks
  dead here; two machines writing one file at the same moment are a conflict anyway.)
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import OutputError, WriteError

SUFFIX = ".tmp"
LEGACY_STALE_S = 600
"""Age after which a temporary without a process id (written by earlier versions) is stale."""
_OURS = re.compile(r"^(\d+)\.[0-9a-f]+$")
_LEGACY = re.compile(r"^[a-z0-9_]{8}$")  # tempfile.mkstemp's names


def temporary_path(path: Path) -> Path:
    """A new temporary name beside ``path``, recording this process's id."""
    return path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{SUFFIX}"


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (True when that cannot be told)."""
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill(pid, 0) is not a probe on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process, or no permission to ask: not ours to remove
        return True
    return True


def stale_temporaries(path: Path) -> list[Path]:
    """Temporaries of ``path`` left by processes that no longer run."""
    prefix = f".{path.name}."
    found = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return []
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(SUFFIX)):
            continue
        middle = name[len(prefix):-len(SUFFIX)]
        ours = _OURS.match(middle)
        try:
            if ours:
                stale = not process_alive(int(ours.group(1)))
                if os.name == "nt":
                    stale = time.time() - entry.stat().st_mtime > 24 * 3600
            elif _LEGACY.match(middle):
                stale = time.time() - entry.stat().st_mtime > LEGACY_STALE_S
            else:
                continue
        except OSError:
            continue
        if stale:
            found.append(Path(entry.path))
    return found


def remove_stale_temporaries(path: Path) -> int:
    """Remove :func:`stale_temporaries` of ``path``; returns how many were removed."""
    removed = 0
    for tmp in stale_temporaries(path):
        try:
            tmp.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def check_writable_file(path: str | os.PathLike) -> Path:
    """Raise :class:`OutputError` when ``path`` cannot become a file (a folder is there)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name, e.g. {path / 'result'}.")
    return path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; rename it over ``path``.

    The temporary already exists (empty) with the right permissions; write it with a plain
    ``open(tmp, "wb")`` or a library that does (tifffile, torch.save). On success it is
    flushed to disk and renamed over ``path``; on any error it is removed and ``path`` is
    left as it was.
    """
    path = check_writable_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    keep_mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else None
    tmp = temporary_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    os.close(fd)
    try:
        if keep_mode is not None:
            os.chmod(tmp, keep_mode)
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        reason = write_failure(exc)
        if reason is None:
            raise
        raise WriteError(f"Cannot write {path}: {reason}; nothing was written there (an "
                         "earlier file is kept).") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_FULL = (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC))


def write_failure(exc: BaseException) -> str | None:
    """Why writing a file failed, in plain words (a full disk, a quota, no permission), for
    the errors of file systems and of the writers that wrap them (torch's zip writer raises
    RuntimeError, e.g. "N requested and M written"); None for other errors."""
    if isinstance(exc, OSError) and not isinstance(exc, OutputError):
        if exc.errno in _FULL:
            return "the disk is full (or a quota or file-size limit is reached); free space " \
                   "or write elsewhere"
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return "no permission to write there (or the file system is read-only)"
        return exc.strerror or str(exc) or "the file system refused the write"
    if isinstance(exc, RuntimeError):  # torch's zip writer reports a short write this way
        return "the disk is full (or a quota or file-size limit is reached), or the file " \
               "system failed; free space or write elsewhere"
    return None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
