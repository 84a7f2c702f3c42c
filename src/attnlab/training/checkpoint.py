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
from safetensors import SafetensorError, safe_open
from torch import nn

from attnlab.errors import AttnlabError
from attnlab.io import (
    WEIGHTS_FILE,
    WriteError,
    read_json,
    read_safetensors,
    write_failure,
    write_json,
    write_safetensors,
)
from attnlab.training import out_lock
from attnlab.training.rng import RngState
from attnlab.training.trainer_state import (  # noqa: F401 (names this module has always offered)
    STATE_FILE,
    STATE_FORMAT,
    join_tensors,
    read_trainer_state,
    split_tensors,
)
from attnlab.validation import check_tensors

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
    checkpoint folder: a file in its place or above it, a parent this user cannot write, or
    another live run owning it (:mod:`~attnlab.training.out_lock`). Then this process owns
    it (one reference, which the run's final save drops): only its parent and the lock
    file beside it are created."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise AttnlabError(f"--out {out_dir}: exists and is not a folder; give a folder path")
    existing = out_dir.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise AttnlabError(f"--out {out_dir}: {existing} is a file, not a folder")
    if hasattr(os, "statvfs") and os.statvfs(existing).f_flag & os.ST_RDONLY:
        raise AttnlabError(f"--out {out_dir}: cannot write in {existing} (read-only file system); choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise AttnlabError(f"--out {out_dir}: cannot write in {existing} (permission denied); choose another --out")
    out_lock.claim(out_dir)


def _write_state(path: Path, state: dict[str, Any]) -> None:
    tensors: dict[str, torch.Tensor] = {}
    structure = split_tensors(state, tensors)
    write_safetensors(path, tensors, metadata={"state": json.dumps(structure)})


def _read_state(path: Path) -> Any:
    tensors = read_safetensors(path)
    check_tensors(tensors, path)
    with safe_open(str(path), framework="pt") as f:
        structure = (f.metadata() or {}).get("state")
    if structure is None:
        raise AttnlabError(f"{path}: no 'state' metadata; not an attnlab optimizer checkpoint")
    try:
        state = join_tensors(json.loads(structure), tensors)
    except json.JSONDecodeError as e:
        raise AttnlabError(f"{path}: the 'state' metadata is not valid JSON ({e})") from None
    except (KeyError, TypeError, ValueError) as e:
        raise AttnlabError(f"{path}: the 'state' metadata names tensor {e} that the file does not hold") from None
    if not isinstance(state, dict) or not ({"optimizer", "scheduler"} <= set(state) or "sharded" in state):
        raise AttnlabError(f"{path}: the 'state' metadata must be an object with 'optimizer' and 'scheduler'")
    return state


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
    """Finish an interrupted swap and create the empty ``.NAME.new`` a save writes into.
    Only the run that owns ``out_dir`` does (:func:`~attnlab.training.out_lock.claim`):
    another live run's ``.NAME.new`` is its save in progress, not debris."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if not out_lock.holds(out_dir):
        out_lock.claim(out_dir)
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

    A write that fails (disk full, ``ulimit -f``, a read-only file system: an ``OSError``,
    safetensors' ``SafetensorError`` or :class:`~attnlab.io.WriteError`) is one
    :class:`~attnlab.io.WriteError` saying whether the previous checkpoint is intact (it
    always is: nothing replaces it before the new one is complete).
    """
    out_dir = Path(out_dir)
    new, old = _sibling(out_dir, "new"), _sibling(out_dir, "old")
    try:
        if not prepared:
            prepare_checkpoint(out_dir)
        _write_and_swap(out_dir, new, old, model, optimizer_state, trainer_state, rng, save_extra)
    except BaseException as e:
        if new.exists() and not _is_complete(new):  # a half-written folder helps no one
            shutil.rmtree(new, ignore_errors=True)
        if isinstance(e, (OSError, SafetensorError, WriteError)):
            raise _checkpoint_write_failure(out_dir, e) from None
        raise
    return out_dir


def _checkpoint_write_failure(out_dir: Path, error: BaseException) -> WriteError:
    reason = error.reason if isinstance(error, WriteError) else write_failure(out_dir, error).reason
    previous = find_checkpoint(out_dir)
    kept = (f"the last checkpoint (step {read_json(previous / STATE_FILE).get('step')}) in {previous} is intact"
            if previous is not None else "no checkpoint was there before")
    return WriteError(f"cannot write the checkpoint in {out_dir} ({reason}); {kept}", reason)


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


def check_optimizer_state(saved: Any, optimizer: torch.optim.Optimizer, path: str | Path) -> None:
    """The saved state of ``optimizer`` (its ``state_dict()`` form) before loading it: the
    same parameter groups and, per parameter, floating moments of the parameter's shape
    (``load_state_dict`` checks neither: a wrong shape fails at the next step, an integer
    moment is silently cast)."""
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict) or not isinstance(saved.get("param_groups"), list):
        raise AttnlabError(f"{path}: optimizer state must be an object with 'state' and 'param_groups'")
    ours = [p for group in optimizer.param_groups for p in group["params"]]
    try:
        ids = [i for group in saved["param_groups"] for i in group["params"]]
    except (TypeError, KeyError):
        raise AttnlabError(f"{path}: param_groups must be objects with a 'params' list") from None
    if len(ids) != len(ours):
        raise AttnlabError(f"{path}: optimizer state for {len(ids)} parameters; this model has {len(ours)}")
    params = dict(zip(ids, ours))
    for index, moments in saved["state"].items():
        param = params.get(index)
        if param is None or not isinstance(moments, dict):
            raise AttnlabError(f"{path}: optimizer state of an unknown parameter {index!r}")
        for name, value in moments.items():
            if name == "step" or not isinstance(value, torch.Tensor):
                continue
            if value.shape != param.shape or not value.is_floating_point():
                raise AttnlabError(f"{path}: optimizer state {name!r} of parameter {index} is {value.dtype} "
                                   f"{tuple(value.shape)}; expected a floating tensor of shape {tuple(param.shape)}")


def _check_generators(generators: dict[str, torch.Tensor], path: Path) -> None:
    """Torch generator states: a ``cpu`` one, each uint8 of the size this torch saves."""
    if "cpu" not in generators:
        raise AttnlabError(f"{path}: no 'cpu' generator state; expected the tensors torch.get_rng_state() gives")
    size = torch.get_rng_state().numel()
    for name, state in generators.items():
        if name.endswith("cpu") and (state.dtype != torch.uint8 or state.shape != (size,)):
            raise AttnlabError(f"{path}: generator state {name!r} is {state.dtype} {tuple(state.shape)}; "
                               f"expected torch.uint8 ({size},)")
        if name.endswith("cpu"):
            try:
                torch.Generator().set_state(state)
            except RuntimeError as e:
                raise AttnlabError(f"{path}: generator state {name!r} is not one torch can restore ({e})") from None


def load_checkpoint(folder: str | Path, model: nn.Module | None) -> tuple[dict[str, Any], dict[str, Any], list[RngState]]:
    """Load the weights into ``model`` (None: not here, a sharded run loads its shards);
    return (trainer state, optimizer state, RNG state of each rank that saved one, rank 0 first)."""
    folder = Path(folder)
    trainer_state = read_trainer_state(folder)
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
    _check_generators(generators, folder / RNG_FILE)
    rngs = []
    for r, each in enumerate(rng_json):
        prefix = "" if r == 0 else f"rank{r}/"
        mine = {k[len(prefix):]: v for k, v in generators.items() if k.startswith(prefix) and "/" not in k[len(prefix):]}
        rngs.append(RngState(each["python"], each["numpy"], mine))
    return trainer_state, _read_state(folder / OPTIMIZER_FILE), rngs
