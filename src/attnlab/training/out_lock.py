"""One live run per output folder: an advisory lock that the kernel drops when the run dies.

A run *owns* its output folder ``NAME`` while it holds an exclusive ``fcntl.flock`` on
the lock file ``.NAME.lock`` beside it (in the same parent as the ``.NAME.new`` and
``.NAME.old`` a checkpoint save uses). The lock file is beside the folder, not in it,
because every save replaces ``NAME`` by rename (``checkpoint.py``): a lock file inside
would leave with the old folder, and the next job would find the new one unlocked. The
file holds the owner's PID, so that a second job is refused naming it.

    claim(out)              take the lock, or one more reference to it in this process;
                            a kill -9 frees it too (the kernel drops flock locks with the
                            process)
    claim(out, wait=True)   block until the owner ends instead of refusing
    release(out)            drop one reference; the last one gives the folder up (the lock
                            file is removed)
    release_all()           give every folder up (the end of a command, of the process)
    owner(out)              the PID of another live process that owns ``out``, else None

Who holds a reference: a train command from its start to its end (``apps.common.check_out``;
the CLI releases all when the command returns), ``Trainer.fit`` from its start to its
final save, and a bare :func:`~attnlab.training.checkpoint.save_checkpoint` (until the
process ends). So a folder is owned exactly while a run in it is live.

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

_held: dict[Path, list[int]] = {}  # lock file -> [the open descriptor holding its lock, references]


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
    """Own the output folder ``out`` (one more reference, which :func:`release` drops).

    Another live run owns it: an :class:`AttnlabError` naming its PID, or with ``wait``
    a note on stderr and a wait until it ends.
    """
    path = lock_path(out)
    if fcntl is None:
        return
    if path in _held:
        _held[path][1] += 1
        return
    noted = False
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise AttnlabError(f"--out {out}: cannot create its lock file {path} ({e.strerror})") from None
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
    with contextlib.suppress(OSError):  # the PID is for messages; a full disk does not stop the lock
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[path] = [fd, 1]


def holds(out: str | os.PathLike) -> bool:
    """Whether this process owns ``out``."""
    return lock_path(out) in _held


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
    """Drop one reference to ``out``; the last gives it up (nothing if this process does
    not own it)."""
    path = lock_path(out)
    if path not in _held:
        return
    _held[path][1] -= 1
    if _held[path][1] <= 0:
        _unlock(path)


def _unlock(path: Path) -> None:
    fd, _ = _held.pop(path)
    with contextlib.suppress(OSError):
        if _same_file(path, fd):
            os.unlink(path)
    os.close(fd)


@atexit.register
def release_all() -> None:
    """Give up every folder this process owns."""
    for path in list(_held):
        _unlock(path)
