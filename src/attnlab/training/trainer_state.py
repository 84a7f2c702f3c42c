"""``trainer_state.json``, read and checked field by field, and the encoding every
checkpoint file of state uses: nested state dicts <-> (JSON, flat tensor dict).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from attnlab.errors import AttnlabError
from attnlab.io import read_json
from attnlab.training.config import TrainConfig

STATE_FILE = "trainer_state.json"
STATE_FORMAT = 1  # trainer_state.json's "format_version" this code writes and reads


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


def read_trainer_state(folder: str | Path) -> dict[str, Any]:
    """``trainer_state.json`` of a checkpoint folder, checked field by field (what
    ``--resume`` reads: the step, the run's config, losses, RNG states)."""
    path = Path(folder) / STATE_FILE
    state = read_json(path)

    def bad(field: str, expected: str) -> AttnlabError:
        value = state
        for part in field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return AttnlabError(f"{path}: {field}: expected {expected}, got {json.dumps(value)[:40]}")

    def is_int(v: Any, low: int = 0) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= low

    def is_number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    version = state.get("format_version", STATE_FORMAT)  # absent: written before the field existed
    if version != STATE_FORMAT or isinstance(version, bool):
        raise AttnlabError(f"{path}: format_version {json.dumps(version)[:40]}; this attnlab reads format {STATE_FORMAT} "
                           "(a newer attnlab wrote it? resume with that version)")
    config = state.get("config")
    if not isinstance(config, dict):
        raise bad("config", "an object (the run's training config)")
    unknown = sorted(set(config) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise AttnlabError(f"{path}: config: unknown field(s) {unknown}; expected TrainConfig's fields")
    if not is_int(config.get("steps"), 1):
        raise bad("config.steps", "an integer >= 1")
    if not is_int(state.get("step")) or state["step"] > config["steps"]:
        raise bad("step", f"an integer in [0, config.steps = {config['steps']}]")
    for field in ("lr", "weight_decay"):
        if field in config and not is_number(config[field]):
            raise bad(f"config.{field}", "a number")
    if not isinstance(state.get("losses", []), list) or not all(is_number(v) for v in state.get("losses", [])):
        raise bad("losses", "a list of numbers")
    if not isinstance(state.get("metrics", {}), dict):
        raise bad("metrics", "an object")
    if not isinstance(state.get("eval_history", []), list):
        raise bad("eval_history", "a list")
    if not is_number(state.get("elapsed_s", 0)):
        raise bad("elapsed_s", "a number of seconds")
    if not is_int(state.get("world_size", 1), 1):
        raise bad("world_size", "an integer >= 1")
    if not is_int(state.get("threads", 1), 1):
        raise bad("threads", "an integer >= 1 (the run's CPU threads)")
    ranks = state.get("rng_ranks", [])
    for i, rng in enumerate([state.get("rng"), *(ranks if isinstance(ranks, list) else [None])]):
        field = "rng" if i == 0 else f"rng_ranks.{i - 1}"
        if not _is_rng_json(rng):
            raise bad(field, "an object with Python's and NumPy's generator states ('python', 'numpy')")
    return state


def _is_rng_json(rng: Any) -> bool:
    """The JSON of one rank's Python/NumPy RNG state, as :func:`split_tensors` wrote it."""
    if not isinstance(rng, dict) or not {"python", "numpy"} <= set(rng):
        return False
    python, numpy = join_tensors(rng["python"], {}), rng["numpy"]
    ints = lambda xs, n: isinstance(xs, list) and len(xs) == n and all(isinstance(x, int) for x in xs)  # noqa: E731
    python_ok = (isinstance(python, (tuple, list)) and len(python) == 3 and isinstance(python[0], int)
                 and ints(list(python[1]) if isinstance(python[1], (tuple, list)) else None, 625))
    numpy_ok = (isinstance(numpy, list) and len(numpy) == 5 and numpy[0] == "MT19937" and ints(numpy[1], 624)
                and isinstance(numpy[2], int))
    return python_ok and numpy_ok
