"""Constrained decoding: the output must carry exactly the source's placeholders.

A UI message's placeholders (``%s``, ``%(count)d``, ``{0}``) are one token each in a
translator's target vocabulary (:func:`attnlab.data.placeholders.protect_placeholders`).
The constraint groups those token ids by what a translation must keep (``%s``, ``%1$s``
and ``%2$s`` are one group, ``%s``: printf's argument numbers may reorder) and tracks,
per hypothesis, how many of each group it has emitted. At every step::

    remaining[n, g] = required[n, g] - used[n, g]
    log p(v) = -inf   if v is in group g and remaining[n, g] <= 0   (no extra, no wrong one)
    log p(</s>) = -inf if any remaining[n, :] > 0                    (none left out)
    log p(v) = -inf   for every free v (words, </s>) when 0 < sum_g remaining[n, g] >= left - 1
                      with ``left = max_len - t`` steps left: the placeholders still owed
                      are placed while there is room (a weak model would ramble instead)

so the search only ranks hypotheses that keep the placeholders, and picks among them by
the model's own scores (Hokamp & Liu 2017 and Post & Vilar 2018 force phrases the same
way; here the phrases are single tokens of a known multiset, so a count per group is the
whole state). A hypothesis that reaches ``max_len`` before placing them all ends unfinished;
the caller verifies the text (a placeholder the vocabulary spells in pieces is not
constrained) and refuses what does not keep them.

Notation: N rows (sentences x beams), V vocabulary, G placeholder groups.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnlab.errors import AttnlabError


class PlaceholderConstraint:
    """``token_group (V,)``: the group of each token id (-1: free); ``required (N, G)``: how many
    of each group row n must emit; ``eos_id``: what may not end a row with some left;
    ``max_len``: the search's length limit."""

    def __init__(self, token_group: Tensor, required: Tensor, eos_id: int, max_len: int):
        if required.dim() != 2 or (token_group.max() >= required.shape[1] if token_group.numel() else False):
            raise AttnlabError(f"PlaceholderConstraint: required must be (N, G) covering every group, "
                               f"got {tuple(required.shape)} for groups up to {int(token_group.max())}")
        self.token_group, self.required, self.eos_id = token_group, required, eos_id
        self.used = torch.zeros_like(required)
        self.max_len, self.t = max_len, 0  # t: tokens emitted so far

    def reorder(self, index: Tensor) -> None:
        """Keep rows ``index (N_new,)`` (beam search's parents; the first call expands B -> B*K)."""
        self.required, self.used = self.required[index], self.used[index]

    def mask(self, log_probs: Tensor) -> Tensor:
        """``log_probs (N, V)`` with the forbidden tokens at -inf."""
        remaining = self.required - self.used  # (N, G)
        grouped = self.token_group >= 0  # (V,)
        group = self.token_group.clamp(min=0)  # (V,)
        exhausted = (remaining[:, group] <= 0) & grouped  # (N, V): a placeholder with none left
        blocked = log_probs.masked_fill(exhausted, float("-inf"))
        owed = remaining.clamp(min=0).sum(dim=-1)  # (N,)
        blocked[:, self.eos_id] = blocked[:, self.eos_id].masked_fill(owed > 0, float("-inf"))
        no_room = (owed > 0) & (owed >= self.max_len - self.t - 1)  # (N,)
        return blocked.masked_fill(no_room[:, None] & ~grouped, float("-inf"))

    def advance(self, tokens: Tensor) -> None:
        """Count the tokens ``(N,)`` just emitted."""
        group = self.token_group[tokens]  # (N,)
        hit = group >= 0
        self.used[hit.nonzero(as_tuple=True)[0], group[hit]] += 1
        self.t += 1
