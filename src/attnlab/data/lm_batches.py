"""Language-model batches: random contiguous windows of one long token stream.

Training (:class:`LMBatches`): batch ``step`` is B windows of T tokens starting at
offsets drawn from ``numpy.random.default_rng([seed, step])``, so it depends on
(seed, step) only and a resumed run sees exactly the batches it would have seen
(the Trainer's :class:`~attnlab.training.BatchSource` contract). The model shifts the
labels: position t of a window predicts token t + 1.

Validation on the held-out stream is :func:`attnlab.evaluation.lm.evaluate_lm`.

Shapes: ``input_ids``, ``labels`` ``(B, T)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from attnlab.errors import AttnlabError


def as_stream(ids) -> Tensor:
    """Token ids (list, array or tensor) as one flat ``(N,)`` long tensor."""
    return torch.as_tensor(np.asarray(ids), dtype=torch.long).reshape(-1)


class LMBatches:
    """``batch(step) -> {"input_ids", "labels"}`` of shape ``(batch_size, context)``."""

    def __init__(self, ids, batch_size: int, context: int, seed: int = 0):
        self.ids = as_stream(ids)
        if batch_size < 1 or context < 2:
            raise AttnlabError(f"LMBatches: batch_size must be >= 1 and context >= 2, got {batch_size} and {context}")
        if len(self.ids) <= context:
            raise AttnlabError(
                f"LMBatches: the training text has {len(self.ids)} tokens, fewer than one window of "
                f"context={context}; give more text or a smaller --context"
            )
        self.batch_size, self.context, self.seed = batch_size, context, seed

    def batch(self, step: int) -> dict[str, Tensor]:
        rng = np.random.default_rng([self.seed, step])
        starts = torch.from_numpy(rng.integers(0, len(self.ids) - self.context + 1, size=self.batch_size))
        index = starts[:, None] + torch.arange(self.context)  # (B, T)
        windows = self.ids[index]
        return {"input_ids": windows, "labels": windows}
