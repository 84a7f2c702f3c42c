"""Atomic file writing: a reader never sees a half-written file.

Every file attnlab writes for later reading (checkpoints, configs, reports) goes
through these helpers: the bytes go to a temporary file in the same folder, are
flushed to disk, and the temporary file is renamed over the target (``os.replace``
is atomic on POSIX and Windows).

A write that fails for any reason -- disk full (``ENOSPC``), the file size limit of
``ulimit -f`` (``EFBIG``), a read-only file system (``EROFS``), no permission -- is one
:class:`WriteError` naming the file and the reason, whatever raised it (an ``OSError``, or
safetensors' ``SafetensorError``, which is not one); the temporary file is removed and the
previous file, if any, is untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from attnlab.errors import AttnlabError

CONFIG_FILE = "config.json"  # a model folder: config + weights (HF layout)
WEIGHTS_FILE = "model.safetensors"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class WriteError(AttnlabError):
    """A file could not be written; the message names it and why (``reason``: the OS's
    words). Nothing was replaced."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


def write_failure(path: str | os.PathLike, error: BaseException) -> WriteError:
    """The one-line :class:`WriteError` of a failed write of ``path``: the OS's reason
    (``No space left on device``), also out of a ``SafetensorError``'s text."""
    if isinstance(error, WriteError):  # a file inside ``path`` (a folder being written)
        reason = error.reason
    elif isinstance(error, OSError):
        reason = error.strerror or str(error)
    else:  # safetensors: "Error while serializing: I/O error: File too large (os error 27)"
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        found = re.search(r"I/O error: (.*?)(?: \(os error \d+\))?$", text)
        reason = found.group(1) if found else text
    kept = "the previous file is unchanged" if Path(path).exists() else "nothing was written"
    return WriteError(f"{path}: cannot write ({reason}); {kept}", reason)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` onto ``path``; a failure is a
    :class:`WriteError` and leaves ``path`` as it was."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except (OSError, SafetensorError) as e:
        raise write_failure(path, e) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            with contextlib.suppress(OSError):
                os.remove(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, write)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike, kind: type | None = dict) -> Any:
    """The JSON value in ``path``; it must be a ``kind`` (an object by default: every file
    attnlab reads is one; None: any value). One clear error otherwise."""
    path = Path(path)
    if not path.is_file():
        raise AttnlabError(f"{path}: {'is a folder, expected a file' if path.is_dir() else 'file not found'}")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise AttnlabError(f"{path}: not valid JSON ({e})") from None
    if kind is not None and not isinstance(value, kind):
        expected = "a JSON object {...}" if kind is dict else f"a JSON {kind.__name__}"
        raise AttnlabError(f"{path}: expected {expected}, got {json.dumps(value)[:40]}")
    return value


def write_safetensors(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Write tensors as safetensors (contiguous CPU copies; shared storage is cloned)."""
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(flat, tmp, metadata=metadata))


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise AttnlabError(f"{path}: {'is a folder, expected a file' if path.is_dir() else 'file not found'}")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise AttnlabError(f"{path}: not a readable safetensors file ({e})") from None


def file_digest(path: str | os.PathLike) -> dict:
    """``{"bytes", "sha256"}`` of a file, read in 16 MiB chunks (what an export's manifest
    records for every file it lists; any file's fingerprint)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return {"bytes": os.path.getsize(path), "sha256": digest.hexdigest()}
