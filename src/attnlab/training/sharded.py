"""Sharded checkpoints of an FSDP2 run: torch.distributed.checkpoint (DCP) in safetensors.

With ``TrainConfig.shard`` every rank holds a shard of each parameter and of its AdamW
moments (DTensors). A save writes them with DCP's ``HuggingFaceStorageWriter``
(``save_distributed``): each rank its own ``shards/shard-0000R-model-00001-of-00001.safetensors``,
each tensor's offset in the full one in the file's JSON metadata -- no pickle, unlike
DCP's default format. The optimizer's non-tensor state (learning rates, betas, ...) and
the scheduler go to ``optimizer.safetensors`` as JSON, written by rank 0 like the rest of
the checkpoint (``checkpoint.py``). Loading goes through DCP too, so a run resumes on any
number of ranks (DCP re-shards).

The final save of a run also writes the full model as the usual HF-style folder
(``config.json`` + ``model.safetensors``); :func:`consolidate` rebuilds the full weights of
any sharded checkpoint in one process (for ``export``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from torch import Tensor, nn

from attnlab.errors import AttnlabError

SHARDS = "shards"
MODEL, OPTIM = "model.", "optim."


def _options(**kwargs):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(**kwargs)


def _states(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, object]]:
    """(tensors keyed ``model.*`` / ``optim.*``, the optimizer's other values, flattened)."""
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    weights = get_model_state_dict(model)
    optim = get_optimizer_state_dict(model, optimizer, options=_options(flatten_optimizer_state_dict=True))
    tensors = {MODEL + k: v for k, v in weights.items()}
    tensors.update({OPTIM + k: v for k, v in optim.items() if isinstance(v, Tensor)})
    rest = {k: v for k, v in optim.items() if not isinstance(v, Tensor)}
    return tensors, rest


def _ties(model: nn.Module) -> dict[str, str]:
    """Tied parameters (one tensor under two names: the translator's embedding and output
    projection): ``{other name: first name}``, the same on every rank."""
    first: dict[int, str] = {}
    ties = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        if id(parameter) in first:
            ties[name] = first[id(parameter)]
        else:
            first[id(parameter)] = name
    return ties


def _tied_key(key: str, ties: dict[str, str]) -> str | None:
    """The key holding the same tensor as ``key`` under the first name, if ``key`` is tied."""
    for name, kept in ties.items():
        if key == MODEL + name:
            return MODEL + kept
        if key.startswith(f"{OPTIM}state.{name}."):
            return f"{OPTIM}state.{kept}." + key[len(f"{OPTIM}state.{name}.") :]
    return None


def save_shards(model: nn.Module, optimizer: torch.optim.Optimizer, folder: Path) -> dict[str, object]:
    """Every rank writes its shards into ``folder/shards``; returns the non-tensor optimizer
    state. A tied tensor is written once (safetensors refuses two names for one memory)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageWriter

    tensors, rest = _states(model, optimizer)
    ties = _ties(model)
    tensors = {k: v for k, v in tensors.items() if _tied_key(k, ties) is None}
    dcp.save(tensors, storage_writer=HuggingFaceStorageWriter(str(folder / SHARDS), save_distributed=True))
    return rest


def load_shards(model: nn.Module, optimizer: torch.optim.Optimizer, folder: Path, rest: dict[str, object]) -> None:
    """Every rank reads its part of ``folder/shards`` into ``model`` and ``optimizer``."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageReader
    from torch.distributed.checkpoint.state_dict import (
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    if not (folder / SHARDS).is_dir():
        raise AttnlabError(f"{folder}: no {SHARDS}/ folder; it was not saved by a sharded (--shard) run")
    tensors, _ = _states(model, optimizer)  # templates DCP loads into (the optimizer's moments included)
    ties = _ties(model)
    dcp.load({k: v for k, v in tensors.items() if _tied_key(k, ties) is None},
             storage_reader=HuggingFaceStorageReader(str(folder / SHARDS)))
    for key in tensors:  # a tied name gets what its first name got
        kept = _tied_key(key, ties)
        if kept is not None and kept in tensors and tensors[key] is not tensors[kept]:
            tensors[key] = tensors[kept]
    set_model_state_dict(model, {k[len(MODEL):]: v for k, v in tensors.items() if k.startswith(MODEL)})
    optim = {k[len(OPTIM):]: v for k, v in tensors.items() if k.startswith(OPTIM)}
    set_optimizer_state_dict(model, optimizer, {**optim, **rest}, options=_options(flatten_optimizer_state_dict=True))


def full_weights(model: nn.Module) -> dict[str, Tensor]:
    """The unsharded weights on rank 0's CPU (empty on the others); every rank must call it."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_options(full_state_dict=True, cpu_offload=True))


def unsharded_copy(model: nn.Module, weights: dict[str, Tensor]) -> nn.Module:
    """A plain (not FSDP) model of ``model``'s class holding ``weights``, to ``save_pretrained``.

    Needs a model built as ``cls(model.config)`` (every attnlab model); another module
    gets a plain ``nn.Module`` whose ``state_dict`` is ``weights``.
    """
    from torch.distributed.fsdp import FSDPModule

    cls = next((c for c in type(model).__mro__ if not issubclass(c, FSDPModule)), type(model))
    config = getattr(model, "config", None)
    if config is None or not callable(getattr(cls, "save_pretrained", None)):
        holder = nn.Module()
        holder.state_dict = lambda: weights  # type: ignore[method-assign]
        return holder
    with torch.device("meta"):
        copy = cls(config)
    copy.load_state_dict(weights, assign=True)
    return copy


def consolidate(folder: str | Path) -> dict[str, Tensor]:
    """The full model weights of a sharded checkpoint ``folder``, in one process, from the
    shard files and the offsets in their metadata (safetensors and JSON only)."""
    files = sorted((Path(folder) / SHARDS).glob("*.safetensors"))
    if not files:
        raise AttnlabError(f"{folder}: no {SHARDS}/*.safetensors; not a sharded checkpoint")
    pieces: dict[str, list[tuple[list[int], Tensor]]] = {}
    for path in files:
        with safe_open(str(path), framework="pt") as f:
            offsets = json.loads((f.metadata() or {}).get("DCP_SHARDING_INFO", "{}"))
            for key in f.keys():
                if key.startswith(MODEL):
                    offset = offsets.get(key, {}).get("saved_offsets") or [0] * len(f.get_slice(key).get_shape())
                    pieces.setdefault(key[len(MODEL):], []).append((offset, f.get_tensor(key)))
    weights = {}
    for name, parts in pieces.items():
        ndim = parts[0][1].dim()
        shape = [max(o[d] + t.shape[d] for o, t in parts) for d in range(ndim)]
        full = torch.empty(shape, dtype=parts[0][1].dtype)
        for offset, tensor in parts:
            full[tuple(slice(o, o + n) for o, n in zip(offset, tensor.shape))] = tensor
        weights[name] = full
    return weights
