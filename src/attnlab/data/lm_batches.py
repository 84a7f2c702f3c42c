"""Language-model batches: random contiguous windows of one long token stream.

Training (:class:`LMBatches`): batch ``step`` is B windows of T tokens starting at
offsets drawn from ``numpy.random.default_rng([seed, step])``, so it depends on
(seed, step) only and a resumed run sees exactly the batches it would have seen
(the Trainer's :class:`~attnlab.training.BatchSource` contract). The model shifts the
labels: position t of a window predicts token t + 1.

Validation (:func:`evaluate_lm`): the held-out stream cut into consecutive windows,
every token after the first of a window predicted once. ``max_windows`` keeps that many
windows spread evenly over the whole stream (a sample of every part of the held-out
text, not just its first files); ``None`` keeps them all:

    loss = total_nll / N,   perplexity = exp(loss),
    bits/char = total_nll / (ln 2 * characters),  characters = N * chars_per_token

with ``chars_per_token`` the ratio of characters to tokens of the validation text
(exactly 1 for a character tokenizer).

Shapes: ``input_ids``, ``labels`` ``(B, T)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.evaluation.metrics import bits_per_character, perplexity


def _as_stream(ids) -> Tensor:
    return torch.as_tensor(np.asarray(ids), dtype=torch.long).reshape(-1)


class LMBatches:
    """``batch(step) -> {"input_ids", "labels"}`` of shape ``(batch_size, context)``."""

    def __init__(self, ids, batch_size: int, context: int, seed: int = 0):
        self.ids = _as_stream(ids)
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


@torch.no_grad()
def evaluate_lm(
    model: nn.Module,
    ids,
    context: int,
    *,
    batch_size: int = 16,
    max_windows: int | None = 64,
    chars_per_token: float = 1.0,
) -> dict[str, float]:
    """Validation loss (nats/token), bits per character and perplexity; see the module docstring."""
    stream = _as_stream(ids)
    available = len(stream) // context
    if available < 1:
        raise AttnlabError(f"evaluate_lm: the validation text has {len(stream)} tokens, fewer than one window of {context}")
    count = available if max_windows is None else min(available, max_windows)
    device = next(model.parameters()).device
    chosen = torch.linspace(0, available - 1, count).round().long()  # (count,) evenly spread
    windows = stream[: available * context].view(available, context)[chosen]  # (count, T)
    total, predicted = 0.0, 0
    for start in range(0, count, batch_size):
        batch = windows[start : start + batch_size].to(device)
        n = batch.shape[0] * (context - 1)
        total += float(model(batch, labels=batch).loss) * n
        predicted += n
    return {
        "val_loss": total / predicted,
        "bits_per_char": bits_per_character(total, round(predicted * chars_per_token)),
        "perplexity": perplexity(total, predicted),
    }
