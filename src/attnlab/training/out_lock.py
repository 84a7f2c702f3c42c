"""One live run per output folder: an advisory lock that the kernel drops when the run dies.

A run *owns* its output folder ``NAME`` while it holds an exclusive ``fcntl.flock`` on
the lock file ``.NAME.lock`` beside it (in the same parent as the ``.NAME.new`` and
``.NAME.old`` a checkpoint save uses). The lock file is beside the folder, not in it,
because every save replaces ``NAME`` by rename (``checkpoint.py``): a lock file inside
would leave with the old folder, and the next job would find the new one unlocked. The
file holds the owner's PID, so that a second job is refused naming it.

    claim(out)              take the lock (idempotent in one process); held until the
                            process ends or release(out); a kill -9 frees it too (the
                            kernel drops flock locks with the process)
    claim(out, wait=True)   block until the owner ends instead of refusing
    owner(out)              the PID of another live process that owns ``out``, else None
    release(out)            give the folder up (the lock file is removed)

Removing the file on release is safe against a waiter holding the old file open: after
taking the lock, a claimer checks that the path still names the file it locked, and
tries again if not. Without ``fcntl`` (Windows) nothing is locked.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from pathlib import Path

from attnlab.errors import AttnlabError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks
    fcntl = None

_held: dict[Path, int] = {}  # lock file -> the open descriptor holding its lock


def lock_path(out: str | os.PathLike) -> Path:
    """``.NAME.lock`` beside the folder ``NAME``."""
    out = Path(os.path.abspath(out))
    return out.parent / f".{out.name}.lock"


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _same_file(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def claim(out: str | os.PathLike, *, wait: bool = False) -> None:
    """Own the output folder ``out`` for the rest of this process (see the module docstring).

    Another live run owns it: an :class:`AttnlabError` naming its PID, or with ``wait``
    a note on stderr and a wait until it ends.
    """
    path = lock_path(out)
    if fcntl is None or path in _held:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    noted = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            who = f"PID {pid}" if pid else "another process"
            if not wait:
                os.close(fd)
                raise AttnlabError(f"--out {out}: in use by a live run ({who}); wait for it to end, "
                                   "pass --wait to start when it does, or choose another --out") from None
            if not noted:
                print(f"note: --out {out} is in use by a live run ({who}); waiting for it to end", file=sys.stderr)
                noted = True
            fcntl.flock(fd, fcntl.LOCK_EX)
        if _same_file(path, fd):  # not removed by an owner's release while we waited
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[path] = fd


def owner(out: str | os.PathLike) -> int | None:
    """The PID of another live process owning ``out`` (0 if it wrote none), else None."""
    path = lock_path(out)
    if fcntl is None or path in _held or not path.exists():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_pid(fd) or 0
    else:
        return None
    finally:
        os.close(fd)


def release(out: str | os.PathLike) -> None:
    """Give ``out`` up (nothing if this process does not own it)."""
    path = lock_path(out)
    fd = _held.pop(path, None)
    if fd is None:
        return
    with contextlib.suppress(OSError):
        if _same_file(path, fd):
            os.unlink(path)
    os.close(fd)


@atexit.register
def _release_all() -> None:
    for path in list(_held):
        release(path.parent / path.name[1:-len(".lock")])
