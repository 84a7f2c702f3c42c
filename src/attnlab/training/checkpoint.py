"""Training checkpoints that a kill at any moment cannot corrupt.

Layout of ``out_dir`` (the folder *is* the latest complete checkpoint, so
``Model.from_pretrained(out_dir)`` works on it directly)::

    config.json             model config            (PretrainedModel.save_pretrained)
    model.safetensors       model weights           (PretrainedModel.save_pretrained)
    optimizer.safetensors   optimizer + LR-scheduler state: the tensors, and the rest as
                            JSON in the safetensors metadata under "state"
    rng_state.safetensors   torch generator states as uint8 tensors: "cpu", "cuda:0", ...
                            (rank 0), "rank1/cpu", ... (the other ranks of a distributed run)
    trainer_state.json      step, losses, metrics, TrainConfig, Python/NumPy RNG states
                            ("rng": rank 0, "rng_ranks": ranks 1, 2, ...), world_size
    ...                     files written by ``save_extra`` (e.g. a tokenizer)

Atomic update (``save_checkpoint``): everything is written into the sibling folder
``.NAME.new`` (``trainer_state.json`` last, every file and the folder fsynced), then
``NAME -> .NAME.old``, ``.NAME.new -> NAME`` (two renames), then ``.NAME.old`` is
deleted. Files in the old ``NAME`` that the checkpoint does not write (plots, notes)
are carried over by hard link. A folder is *complete* when it holds
``trainer_state.json``. A kill leaves one of:

    during writing        NAME (old, complete)  + .NAME.new (incomplete)
    between the renames   .NAME.old (complete)  + .NAME.new (new, complete)
    after the renames     NAME (new, complete)  [+ .NAME.old]

so the latest complete checkpoint is ``NAME`` when it exists (it only ever appears by
rename, complete), else the first complete one of ``.NAME.new``, ``.NAME.old``
(:func:`find_checkpoint`); the next save first finishes an interrupted swap. Reading never uses pickle: safetensors and JSON only.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from attnlab.errors import AttnlabError
from attnlab.io import WEIGHTS_FILE, read_json, read_safetensors, write_json, write_safetensors
from attnlab.training.rng import RngState

STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng_state.safetensors"


def _sibling(out_dir: Path, suffix: str) -> Path:
    return out_dir.parent / f".{out_dir.name}.{suffix}"


def _is_complete(folder: Path) -> bool:
    return (folder / STATE_FILE).is_file()


def find_checkpoint(out_dir: str | Path) -> Path | None:
    """The folder holding the latest complete checkpoint of ``out_dir``, or None."""
    out_dir = Path(out_dir)
    if out_dir.exists():  # it only ever appears complete, by rename (or was made by hand)
        return out_dir if _is_complete(out_dir) else None
    for folder in (_sibling(out_dir, "new"), _sibling(out_dir, "old")):
        if _is_complete(folder):
            return folder
    return None


def check_out_dir(out_dir: str | Path) -> None:
    """Fail before training, not at the first save, when ``out_dir`` cannot become a
    checkpoint folder: a file in its place or above it, or a parent this user cannot
    write. Nothing is created."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise AttnlabError(f"--out {out_dir}: exists and is not a folder; give a folder path")
    existing = out_dir.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise AttnlabError(f"--out {out_dir}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise AttnlabError(f"--out {out_dir}: cannot write in {existing} (permission denied); choose another --out")


# --- nested state dicts <-> (JSON, flat tensor dict) -------------------------------
def split_tensors(obj: Any, tensors: dict[str, torch.Tensor], path: str = "") -> Any:
    """JSON-able copy of ``obj`` with each tensor moved into ``tensors`` under its path.

    Tuples and dicts with non-string keys (optimizer state is keyed by int) are tagged
    so that :func:`join_tensors` rebuilds them exactly.
    """
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj
        return {"__tensor__": path}
    if isinstance(obj, tuple):
        return {"__tuple__": [split_tensors(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [split_tensors(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: split_tensors(v, tensors, f"{path}.{k}") for k, v in obj.items()}
        return {"__items__": [[k, split_tensors(v, tensors, f"{path}.{k}")] for k, v in obj.items()]}
    return obj


def join_tensors(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`split_tensors`."""
    if isinstance(obj, list):
        return [join_tensors(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__tuple__" in obj:
        return tuple(join_tensors(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {k: join_tensors(v, tensors) for k, v in obj["__items__"]}
    return {k: join_tensors(v, tensors) for k, v in obj.items()}


def _write_state(path: Path, state: dict[str, Any]) -> None:
    tensors: dict[str, torch.Tensor] = {}
    structure = split_tensors(state, tensors)
    write_safetensors(path, tensors, metadata={"state": json.dumps(structure)})


def _read_state(path: Path) -> Any:
    tensors = read_safetensors(path)
    with safe_open(str(path), framework="pt") as f:
        structure = (f.metadata() or {}).get("state")
    if structure is None:
        raise AttnlabError(f"{path}: no 'state' metadata; not an attnlab optimizer checkpoint")
    return join_tensors(json.loads(structure), tensors)


# --- the folder swap ----------------------------------------------------------------
def _fsync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    if os.name == "posix":  # directory entries are durable only after fsync of the folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _carry_over(old: Path, new: Path) -> None:
    """Hard-link (or copy) what ``old`` holds and ``new`` does not, e.g. user plots."""
    for entry in old.iterdir():
        target = new / entry.name
        if target.exists() or entry.name.startswith("."):
            continue
        if entry.is_dir():
            shutil.copytree(entry, target, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, target)


def _link_or_copy(src: str | Path, dst: str | Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _finish_interrupted_swap(out_dir: Path) -> None:
    new, old = _sibling(out_dir, "new"), _sibling(out_dir, "old")
    latest = find_checkpoint(out_dir)
    if latest is not None and latest != out_dir:
        os.replace(latest, out_dir)
    for leftover in (new, old):
        if leftover.exists():
            shutil.rmtree(leftover)


def prepare_checkpoint(out_dir: str | Path) -> Path:
    """Finish an interrupted swap and create the empty ``.NAME.new`` a save writes into."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _finish_interrupted_swap(out_dir)
    new = _sibling(out_dir, "new")
    new.mkdir()
    return new


def save_checkpoint(
    out_dir: str | Path,
    model: nn.Module | None,
    optimizer_state: dict[str, Any],
    trainer_state: dict[str, Any],
    rng: RngState | list[RngState],
    save_extra: Callable[[Path], None] | None = None,
    *,
    prepared: bool = False,
) -> Path:
    """Write a complete checkpoint and atomically make it ``out_dir``.

    ``rng``: the RNG state of each rank, rank 0 first (one state for one process).
    ``model`` None: no weights (a sharded save whose ranks wrote theirs into the folder of
    :func:`prepare_checkpoint` already: ``prepared=True``).
    """
    out_dir = Path(out_dir)
    new, old = _sibling(out_dir, "new"), _sibling(out_dir, "old")
    if not prepared:
        prepare_checkpoint(out_dir)
    try:
        _write_and_swap(out_dir, new, old, model, optimizer_state, trainer_state, rng, save_extra)
    except BaseException:
        if new.exists() and not _is_complete(new):  # a half-written folder helps no one
            shutil.rmtree(new, ignore_errors=True)
        raise
    return out_dir


def _write_and_swap(
    out_dir: Path, new: Path, old: Path, model: nn.Module | None, optimizer_state: dict[str, Any],
    trainer_state: dict[str, Any], rng: RngState | list[RngState], save_extra: Callable[[Path], None] | None,
) -> None:
    if model is None:
        pass
    elif callable(getattr(model, "save_pretrained", None)):  # a model that writes its own folder
        model.save_pretrained(new)
    else:
        write_safetensors(new / WEIGHTS_FILE, dict(model.state_dict()), metadata={"format": "pt"})
    _write_state(new / OPTIMIZER_FILE, optimizer_state)
    rngs = rng if isinstance(rng, list) else [rng]
    write_safetensors(new / RNG_FILE, {
        (name if r == 0 else f"rank{r}/{name}"): state for r, each in enumerate(rngs) for name, state in each.torch.items()
    })
    if save_extra is not None:
        save_extra(new)
    if out_dir.exists():
        _carry_over(out_dir, new)
    rng_json = [split_tensors({"python": each.python, "numpy": each.numpy}, {}) for each in rngs]  # keeps the tuples
    extra = {"rng_ranks": rng_json[1:]} if len(rngs) > 1 else {}
    write_json(new / STATE_FILE, {**trainer_state, "rng": rng_json[0], **extra})
    _fsync_tree(new)
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(new, out_dir)
    _fsync_dir(out_dir.parent)
    if old.exists():
        shutil.rmtree(old)


def load_checkpoint(folder: str | Path, model: nn.Module | None) -> tuple[dict[str, Any], dict[str, Any], list[RngState]]:
    """Load the weights into ``model`` (None: not here, a sharded run loads its shards);
    return (trainer state, optimizer state, RNG state of each rank that saved one, rank 0 first)."""
    folder = Path(folder)
    trainer_state = read_json(folder / STATE_FILE)
    rng_json = [join_tensors(r, {}) for r in [trainer_state.pop("rng"), *trainer_state.pop("rng_ranks", [])]]
    if model is not None:
        if callable(getattr(type(model), "from_pretrained", None)):
            weights = type(model).from_pretrained(folder).state_dict()
        else:
            weights = read_safetensors(folder / WEIGHTS_FILE)
        try:
            model.load_state_dict(weights)
        except RuntimeError as e:
            raise AttnlabError(f"{folder}: checkpoint weights do not fit this model ({e})") from None
    generators = read_safetensors(folder / RNG_FILE)
    rngs = []
    for r, each in enumerate(rng_json):
        prefix = "" if r == 0 else f"rank{r}/"
        mine = {k[len(prefix):]: v for k, v in generators.items() if k.startswith(prefix) and "/" not in k[len(prefix):]}
        rngs.append(RngState(each["python"], each["numpy"], mine))
    return trainer_state, _read_state(folder / OPTIMIZER_FILE), rngs
