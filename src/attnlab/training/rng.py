"""Seeding and capturing every random number generator a training step may use.

Python's ``random``, NumPy's global generator and torch's CPU (and CUDA) generators.
A captured :class:`RngState` restores them exactly, which is what makes a resumed run
produce the same losses as an uninterrupted one (dropout masks, sampling, shuffles).

Several ranks: each rank has generators of its own (dropout masks of different rows
must differ). Rank 0 is seeded with ``seed`` itself -- so one process is the same run it
always was -- and rank ``r > 0`` with ``rank_seed(seed, r)``. A checkpoint holds
every rank's state; resumed with more ranks than it was saved with, a new rank ``r``
starts from ``rank_seed(seed, r, step)``. What the data is does not depend on these
generators at all (batches are a function of the step), so with dropout 0 a run resumed
at any world size continues the same losses.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rank_seed(seed: int, rank: int, step: int | None = None) -> int:
    """The seed of rank ``rank`` (``seed`` itself for rank 0 at the start of a run)."""
    if rank == 0 and step is None:
        return seed
    words = [seed % 2**63, rank, 0] if step is None else [seed % 2**63, rank, 1, step]  # tagged: no form equals another
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> 1)


@dataclass
class RngState:
    python: Any  # random.getstate(): (version, tuple of 625 ints, gauss_next)
    numpy: list[Any]  # np.random.get_state() with the key array as a list of ints
    torch: dict[str, torch.Tensor]  # "cpu", "cuda:0", ...: uint8 generator states


def capture_rng() -> RngState:
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    generators = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            generators[f"cuda:{i}"] = state
    return RngState(random.getstate(), [kind, keys.tolist(), pos, has_gauss, cached], generators)


def restore_rng(state: RngState) -> None:
    version, internal, gauss = state.python
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state.numpy
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state.torch["cpu"])
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            if f"cuda:{i}" in state.torch:
                torch.cuda.set_rng_state(state.torch[f"cuda:{i}"], i)
