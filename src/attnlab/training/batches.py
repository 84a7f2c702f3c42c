"""Where training batches come from: a source indexed by the step number.

A :class:`BatchSource` is deterministic in (its own seed, step): the position in the
data *is* the step, so a resumed run asks for batch ``step`` and gets exactly the batch
the uninterrupted run would have seen — no iterator state to save.
(:class:`attnlab.data.shuffle.EpochShuffler` gives the item indices of a step.)
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class BatchSource(Protocol):
    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """The batch of update ``step`` (0-based); called with ``0, 1, ..., steps - 1``."""
        ...
