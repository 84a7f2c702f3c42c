"""The validation layer of user-given files: one set of checks per kind of file.

Every file a user hands attnlab (a checkpoint's ``config.json`` and weights, tokenizer
files, the state files ``--resume`` reads, CSV/TSV and text data) is checked where it is
read, and a bad one ends in one :class:`~attnlab.errors.AttnlabError` that names the file,
the field and what was expected -- never a traceback, never a silent success.

    kind                          check here                        used by
    config.json (typed dataclass) check_config: types, ranges,     attnlab.config.config_from_dict
                                  token ids inside the vocabulary
    model size                    check_memory: the model built on  models.base.from_pretrained
                                  the meta device, before allocating
    weights (safetensors)         check_tensors: dtype kind, NaN/Inf models.base, training.checkpoint
    text data                     decode_text: no NUL bytes, UTF-8  data (lm, mlm, translate, classify)
    CSV/TSV                       decode_text(strict=True): UTF-8   data.graphs, apps.bert, data.corpus

JSON files must hold an object (:func:`attnlab.io.read_json`), safetensors files must parse
(:func:`attnlab.io.read_safetensors`), images must decode within Pillow's size limit
(:mod:`attnlab.data.images`). This module sits below models and data: it imports only
``errors`` and torch.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from attnlab.errors import AttnlabError

MAX_INT = 2**31 - 1  # no size or id of a config is larger (tensor dims are int64, but no model is this big)
MAX_LAYERS = 1024  # deeper than any published model; keeps a bad config from building 10**9 modules
MAX_HEADS = 4096

# Field-name roles of the typed configs (the names attnlab's dataclasses use).
_SIZE_WORDS = ("size", "layers", "heads", "dim", "d_model", "d_ff", "_len", "length", "positions", "patch",
               "channels", "classes", "window")
_PROBABILITY_WORDS = ("dropout", "_prob", "smoothing")


# ------------------------------------------------------------------ typed configs
def check_config(cls: type, data: Mapping[str, Any], names: Mapping[str, str] | None = None) -> None:
    """Check the values of ``data`` against the fields of the dataclass ``cls``: the type of
    each annotation (``int``, ``float``, ``bool``, ``str``, ``list[str]``, ``X | None``), the
    range its role implies (sizes >= 1 and bounded, probabilities in [0, 1], ``eps`` > 0,
    token ids inside the vocabulary): what is wrong (<= 0, NaN, infinite, the wrong type),
    never what is merely unusual (``layer_norm_eps = 1.0`` is legal). ``names`` maps a field to the key the file
    uses for it (HF's ``n_layer`` for ``num_layers``), so messages name what the user sees.
    Raises an :class:`AttnlabError` ``"<key>: expected ..., got ..."``."""
    names = names or {}
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    for name, value in data.items():
        if name not in fields:
            continue
        shown = names.get(name, name)
        expected = _type_error(value, hints.get(name, Any))
        if expected:
            raise AttnlabError(f"{shown}: expected {expected}, got {_show(value)}")
        _check_range(name, shown, value)
    defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    merged = {**defaults, **{k: v for k, v in data.items() if k in fields}}
    vocab = [v for k, v in merged.items() if "vocab_size" in k and isinstance(v, int)]
    for name, value in merged.items():
        if name.endswith("_id") and isinstance(value, int) and vocab and value >= min(vocab):
            raise AttnlabError(
                f"{names.get(name, name)}: expected a token id below the vocabulary size {min(vocab)}, got {value}"
            )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_error(value: Any, hint: Any) -> str | None:
    """What ``hint`` expects, when ``value`` does not match it; None when it does."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return None
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = [_type_error(value, o) for o in options if o is not type(None)]
        if any(e is None for e in errors):
            return None
        return " or ".join(errors) + (" or null" if type(None) in options else "")
    if hint is bool:
        return None if isinstance(value, bool) else "true or false"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else "a finite number"
    if hint is str:
        return None if isinstance(value, str) else "a string"
    if origin in (list, tuple):
        if not isinstance(value, list):
            return "a list"
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if args and any(_type_error(v, args[0]) for v in value):
            return f"a list of {getattr(args[0], '__name__', args[0])} values"
        return None
    if origin is dict or hint is dict:
        return None if isinstance(value, dict) else "an object"
    return None


def _check_range(name: str, shown: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, int):
        if any(w in name for w in _SIZE_WORDS):
            low, high = 1, MAX_LAYERS if name.endswith("layers") else MAX_HEADS if name.endswith("heads") else MAX_INT
        elif name.endswith("_id"):
            low, high = 0, MAX_INT
        else:
            return  # counts and indices whose meaning the config's own checks know
        if not low <= value <= high:
            raise AttnlabError(f"{shown}: expected an integer in [{low}, {high}], got {value}")
    elif any(w in name for w in _PROBABILITY_WORDS) and not 0 <= value <= 1:
        raise AttnlabError(f"{shown}: expected a probability in [0, 1], got {value}")
    elif name.endswith("eps") and not value > 0:  # any positive eps is legal (HF's own tests use 1.0)
        raise AttnlabError(f"{shown}: expected a positive number, got {value}")


# ------------------------------------------------------------------ memory
def available_memory() -> int:
    """Bytes this process may still allocate: MemAvailable, bounded by a cgroup limit."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return 1 << 62  # unknown: do not refuse
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit != "max":
                available = min(available, int(limit) - int(Path(usage_file).read_text()))
        except (OSError, ValueError):
            pass
    return available


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes of the parameters and buffers of ``module`` (works on the meta device)."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def check_memory(nbytes: int, source: str | Path, what: str) -> None:
    """Refuse ``what`` (needing ``nbytes``) when it cannot fit in the memory left."""
    available = available_memory()
    if nbytes > available:
        raise AttnlabError(
            f"{source}: {what} needs {_gib(nbytes)} of memory, more than the {_gib(available)} available; "
            "is a size in the config wrong?"
        )


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:,.1f} GiB" if nbytes >= 2**28 else f"{nbytes / 2**20:,.1f} MiB"


# ------------------------------------------------------------------ tensors
def check_tensors(
    tensors: Mapping[str, Tensor], source: str | Path, expected: Mapping[str, Tensor] | None = None, *, finite: bool = True
) -> None:
    """Weights from a file: floating where ``expected`` is floating (an integer or bool
    tensor in place of a float weight is a broken file; float16/bfloat16 are converted as
    usual), and with ``finite`` every value finite (a NaN or Inf weight makes every output NaN)."""
    for name, tensor in tensors.items():
        want = None if expected is None else expected.get(name)
        if want is not None and want.is_floating_point() != tensor.is_floating_point():
            kind = "a floating-point" if want.is_floating_point() else "an integer"
            raise AttnlabError(f"{source}: tensor {name!r} is {tensor.dtype}; expected {kind} tensor like {want.dtype}")
        if finite and tensor.is_floating_point() and tensor.numel() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise AttnlabError(f"{source}: tensor {name!r} holds {bad} NaN or infinite value(s); expected finite numbers")


# ------------------------------------------------------------------ text
MAX_BAD_UTF8_SHARE = 0.01  # a text with more undecodable bytes than this is not text


def decode_text(data: bytes, source: str | Path, *, strict: bool = False) -> str:
    """The text of a user's file, refusing binaries.

    NUL bytes (executables, images, UTF-16) are never text. ``strict`` (CSV/TSV, where a
    wrong byte is a wrong field): the bytes must be UTF-8 and the error names the line;
    otherwise a few undecodable bytes are replaced, but more than 1 % of the characters
    means the file is not UTF-8 text."""
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise AttnlabError(f"{source}:{line}: NUL byte: a binary file; expected UTF-8 text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if strict:
            line = data[: e.start].count(b"\n") + 1
            raise AttnlabError(f"{source}:{line}: not valid UTF-8 ({e.reason}: {data[e.start:e.start + 4]!r}); "
                               "expected UTF-8 text (re-save the file as UTF-8)") from None
    text = data.decode("utf-8-sig", errors="replace")
    bad = text.count("\ufffd")
    if bad > MAX_BAD_UTF8_SHARE * max(len(text), 1):
        raise AttnlabError(f"{source}: {bad} of {len(text)} characters are not UTF-8; expected a UTF-8 text file")
    return text


def read_text(path: str | Path, *, strict: bool = False) -> str:
    """:func:`decode_text` of the file at ``path`` (one clear error if it cannot be read)."""
    path = Path(path)
    if not path.is_file():
        raise AttnlabError(f"{path}: {'is a folder, expected a file' if path.is_dir() else 'file not found'}")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise AttnlabError(f"{path}: cannot read ({e.strerror})") from None
    return decode_text(data, path, strict=strict)
