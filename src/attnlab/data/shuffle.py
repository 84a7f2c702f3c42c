"""Which items a training step reads: an endless stream of shuffled epochs.

The items are read as an endless stream of epochs, each a fresh permutation of
``range(num_items)`` drawn from ``numpy.random.default_rng([seed, epoch])``; batch
``step`` is positions ``[step * batch_size, (step + 1) * batch_size)`` of that stream.
Every item is seen once per epoch, nothing is dropped, and a batch larger than the data
set simply spans epochs. Being a function of (seed, step), a resumed run reads exactly
the batches the uninterrupted run would have read.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from attnlab.errors import AttnlabError


class EpochShuffler:
    """Item indices per step: ``EpochShuffler(100, 8, seed=0).indices(3)`` -> 8 ints."""

    def __init__(self, num_items: int, batch_size: int, seed: int = 0):
        if num_items < 1:
            raise AttnlabError(f"EpochShuffler: num_items must be >= 1, got {num_items}")
        if batch_size < 1:
            raise AttnlabError(f"EpochShuffler: batch_size must be >= 1, got {batch_size}")
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self._permutation = lru_cache(maxsize=4)(self._draw)

    def _draw(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_items)

    def epoch(self, step: int) -> int:
        """The epoch that the first item of batch ``step`` belongs to."""
        return step * self.batch_size // self.num_items

    def indices(self, step: int) -> list[int]:
        if step < 0:
            raise AttnlabError(f"EpochShuffler.indices: step must be >= 0, got {step}")
        start = step * self.batch_size
        positions = range(start, start + self.batch_size)
        return [int(self._permutation(p // self.num_items)[p % self.num_items]) for p in positions]
