"""Sampling-based decoding of causal language models: greedy and sampled, with a KV cache.

    x_{t+1} = argmax_v p(v | x_<=t)                        greedy
    x_{t+1} ~ softmax(z / T) restricted to top-k / top-p   sampling (Holtzman et al. 2020)

The prompt is run once (prefill, ``model(...)``) filling one preallocated :class:`KVCache`
per layer; each later step (``model.decode_step``) feeds one token per sequence and reads
the keys/values of the others from the cache, so a step costs O(L) instead of O(L^2) and
no tensor is reallocated.

Batches of prompts of different lengths are *left*-padded (``attention_mask`` 0 on the
padding): every sequence then ends at the same column and the new tokens line up.
Positions count real tokens only, ``position = cumsum(mask) - 1``, so a padded prompt
gets the same positions, and the same continuation, as the prompt alone.

Beam search over a step-wise decoder is :mod:`attnlab.evaluation.decoding`'s job.

Notation: B batch, L prompt length (padding included), N new tokens, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from attnlab.errors import AttnlabError


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Set to ``-inf`` every logit outside the top-k and outside the top-p nucleus.

    ``logits (B, V)``. The nucleus is the smallest set of most likely tokens whose
    probability sums to at least ``top_p``; the most likely token is always kept.
    """
    if top_k is not None:
        if top_k < 1:
            raise AttnlabError(f"top_k must be >= 1, got {top_k}")
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        if not 0 < top_p <= 1:
            raise AttnlabError(f"top_p must be in (0, 1], got {top_p}")
        sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
        probs = sorted_logits.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # mass of the more likely tokens
        drop_sorted = before >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def next_tokens(
    logits: Tensor,
    *,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Pick one token per row of ``logits (B, V)``: ``(B,)``."""
    if not do_sample:
        return logits.argmax(dim=-1)
    if not temperature > 0 or temperature == float("inf"):  # NaN fails the first test
        raise AttnlabError(f"temperature must be a finite number > 0 when sampling, got {temperature}")
    logits = filter_logits(logits.float() / temperature, top_k, top_p)
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)


def _positions(attention_mask: Tensor) -> Tensor:
    """``(B, L)`` position of each token counting real tokens only (padding gets 0)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)


@torch.inference_mode()
def generate(
    model,
    input_ids: Tensor,
    max_new_tokens: int,
    *,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    attention_mask: Tensor | None = None,
    generator: torch.Generator | None = None,
    on_tokens: Callable[[Tensor], None] | None = None,
) -> Tensor:
    """Continue ``input_ids (B, L)`` by up to ``max_new_tokens``: ``LongTensor (B, L + N)``.

    ``model`` is a causal LM such as :class:`attnlab.models.GPT` (``config.context_length``,
    ``make_caches(capacity)``, ``model(ids, attention_mask, position_ids=, caches=,
    last_only=True).logits`` for the prompt and ``model.decode_step(ids (B, 1), caches,
    attention_mask, position_ids).logits`` for each new token). A sequence that emits
    ``eos_token_id`` is finished: it
    gets ``pad_token_id`` (default: the EOS id) afterwards, and generation stops when
    every sequence is finished. ``on_tokens(tokens (B,))`` is called after each step,
    for streaming.
    """
    b, length = input_ids.shape
    limit = model.config.context_length
    if max_new_tokens < 0:
        raise AttnlabError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if length < 1 or length + max_new_tokens > limit:
        raise AttnlabError(
            f"the prompt ({length} tokens) plus max_new_tokens ({max_new_tokens}) must fit the model's "
            f"context of {limit} tokens (and the prompt must not be empty)"
        )
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        raise AttnlabError(f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, got {tuple(attention_mask.shape)}")
    pad_token_id = eos_token_id if pad_token_id is None else pad_token_id
    padded = attention_mask is not None and not bool(attention_mask.all())
    full_mask = None
    if padded:  # preallocated for prompt + new tokens; new tokens are always real
        full_mask = attention_mask.new_ones(b, length + max_new_tokens)
        full_mask[:, :length] = attention_mask
    position = _positions(attention_mask) if padded else None  # (B, L)
    caches = model.make_caches(capacity=length + max_new_tokens)
    out = input_ids.new_empty(b, length + max_new_tokens)  # (B, L + N)
    out[:, :length] = input_ids
    finished = torch.zeros(b, dtype=torch.bool, device=input_ids.device)
    cur = length
    for step in range(max_new_tokens):
        mask = None if full_mask is None else full_mask[:, :cur]
        if step == 0:  # the prompt
            logits = model(input_ids, mask, position_ids=position, caches=caches, last_only=True).logits[:, -1]  # (B, V)
        else:
            logits = model.decode_step(out[:, cur - 1 : cur], caches, mask, position).logits[:, -1]  # (B, V)
        token = next_tokens(logits, do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
        if eos_token_id is not None:
            token = token.masked_fill(finished, pad_token_id)
            finished |= token == eos_token_id
        out[:, cur] = token
        cur += 1
        if on_tokens is not None:
            on_tokens(token)
        if eos_token_id is not None and bool(finished.all()):
            break
        if position is not None:
            position = position[:, -1:] + 1  # (B, 1)
    return out[:, :cur]
