"""Atomic file writing: a reader never sees a half-written file.

Every file attnlab writes for later reading (checkpoints, configs, reports) goes
through these helpers: the bytes go to a temporary file in the same folder, are
flushed to disk, and the temporary file is renamed over the target (``os.replace``
is atomic on POSIX and Windows).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from attnlab.errors import AttnlabError

CONFIG_FILE = "config.json"  # a model folder: config + weights (HF layout)
WEIGHTS_FILE = "model.safetensors"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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
