"""Random attribution: a uniform random score per unit, the floor every method must beat.

    a_j ~ U(0, 1), i.i.d., from a generator seeded by ``seed`` (the same order every run)
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnlab.explain.explainable import Explainable


def random_baseline(x: Explainable, seed: int = 0) -> Tensor:
    """``(L,)`` uniform random scores."""
    return torch.rand(x.num_units, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
