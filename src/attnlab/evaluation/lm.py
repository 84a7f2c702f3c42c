"""Language-model validation: loss, bits per character and perplexity on a held-out stream.

The held-out stream is cut into consecutive windows of ``context`` tokens, every token
after the first of a window predicted once. ``max_windows`` keeps that many windows spread
evenly over the whole stream (a sample of every part of the held-out text, not just its
first files); ``None`` keeps them all::

    loss = total_nll / N,   perplexity = exp(loss),
    bits/char = total_nll / (ln 2 * characters),  characters = N * chars_per_token

with ``chars_per_token`` the ratio of characters to tokens of the validation text
(exactly 1 for a character tokenizer). The model is any callable whose output has
``.logits`` ``(B, T, V)`` for ``input_ids`` ``(B, T)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from attnlab.data.lm_batches import as_stream
from attnlab.errors import AttnlabError
from attnlab.evaluation.metrics import bits_per_character, perplexity


def count_windows(tokens: int, context: int, *, stride: int | None = None) -> int:
    """How many windows of ``context`` tokens, one every ``stride`` (``None``: ``context``),
    fit in a stream of ``tokens``: ``(tokens - context) // stride + 1``, at least one."""
    step = context if stride is None else stride
    if not 1 <= step <= context:
        raise AttnlabError(f"evaluate_lm: stride must be in [1, context={context}], got {stride}")
    if tokens < context:
        raise AttnlabError(f"evaluate_lm: the validation text has {tokens} tokens, fewer than one window of {context}")
    return (tokens - context) // step + 1


@torch.no_grad()
def evaluate_lm(
    model: nn.Module,
    ids,
    context: int,
    *,
    batch_size: int = 16,
    max_windows: int | None = 64,
    chars_per_token: float = 1.0,
    stride: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """Validation loss (nats/token), bits per character and perplexity; see the module docstring.

    ``stride`` (sliding windows): windows start every ``stride`` tokens and each one after
    the first scores only its last ``stride`` predictions, so every scored token sees at
    least ``context - stride`` tokens before it (the strided evaluation of fixed-context
    models in HF's perplexity guide). ``None``: consecutive windows, every prediction scored.
    ``on_progress(done, total)``: windows scored so far, after every batch.
    """
    stream = as_stream(ids)
    step = context if stride is None else stride
    available = count_windows(len(stream), context, stride=stride)
    count = available if max_windows is None else min(available, max_windows)
    device = next(model.parameters()).device
    chosen = torch.linspace(0, available - 1, count).round().long()  # (count,) evenly spread
    starts = chosen * step  # (count,)
    # predictions j -> j + 1 scored per window: all of the first window's, the last `step` of the others'
    first_scored = torch.where(starts == 0, 0, context - 1 - step)  # (count,)
    total, predicted = 0.0, 0
    for begin in range(0, count, batch_size):
        rows = slice(begin, begin + batch_size)
        batch = stream[starts[rows, None] + torch.arange(context)].to(device)  # (b, T)
        logits = model(batch).logits[:, :-1].float()  # (b, T-1, V)
        nll = F.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none")  # (b, T-1)
        scored = torch.arange(context - 1, device=device) >= first_scored[rows, None].to(device)  # (b, T-1)
        total += float(nll[scored].sum())
        predicted += int(scored.sum())
        if on_progress is not None:
            on_progress(min(begin + batch_size, count), count)
    return {
        "val_loss": total / predicted,
        "bits_per_char": bits_per_character(total, round(predicted * chars_per_token)),
        "perplexity": perplexity(total, predicted),
    }
