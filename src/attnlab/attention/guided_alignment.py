"""Guided alignment training: supervise the attention with gold word alignments
(Chen et al. 2016, "Guided Alignment Training for Topic-Aware Neural Machine Translation";
Garg et al. 2019, "Jointly Learning to Align and Translate with Transformer Models";
OpenNMT-py's ``lambda_align``).

Unsupervised attention aligns most words well, but function words tend to attend to the
next source word to translate (Ghader & Monz 2017). Where alignments matter (placing tags
or markup in a translation) the attention is trained towards the gold links:

    g_{b,t,s} = 1 / |U_{b,t}|  if source token s belongs to a word linked to the word of
                               target token t (U_{b,t}: all such source tokens), else 0
    L_align   = -(1 / R) sum_{b,t,s} g_{b,t,s} log(a_{b,t,s} + eps)
    L         = L_CE + lambda L_align

``R`` counts the target tokens with at least one link; a token without a link has an
all-zero row of ``g`` and so adds nothing. Subword tokenizers: every token of target word
``j`` gets the links of word ``j``, spread uniformly over the tokens of the linked source words.

Notation: B batch, T target tokens (the tokens the decoder predicts), S source tokens.
Shapes: ``weights (B, T, S)`` attention rows, ``targets (B, T, S)`` the rows ``g``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from attnlab.errors import AttnlabError

Links = set[tuple[int, int]]  # (source word i, target word j), as ParallelCorpus.alignments


def alignment_targets(
    links: Sequence[Links],
    src_words: Sequence[Sequence[int]],
    tgt_words: Sequence[Sequence[int]],
    src_len: int | None = None,
    tgt_len: int | None = None,
) -> Tensor:
    """Gold word links as per-token target distributions ``g (B, T, S)`` (fp32).

    ``links[b]``: word pairs ``(i, j)`` of sentence pair ``b``; ``src_words[b][s]`` /
    ``tgt_words[b][t]``: the word index of source token ``s`` / target token ``t``
    (:meth:`attnlab.data.tokenizer.Tokenizer.word_ids`). ``src_len``/``tgt_len`` pad the
    result (default: the longest sentence); rows past a sentence's tokens are zero.
    """
    if not len(links) == len(src_words) == len(tgt_words):
        raise AttnlabError(
            f"alignment_targets: {len(links)} link sets, {len(src_words)} source and {len(tgt_words)} target word lists"
        )
    longest = lambda words: max((len(w) for w in words), default=0)  # noqa: E731
    src_len = longest(src_words) if src_len is None else src_len
    tgt_len = longest(tgt_words) if tgt_len is None else tgt_len
    index: list[tuple[int, int, int]] = []  # (b, t, s) of every non-zero entry
    values: list[float] = []
    for b, (pairs, src_ids, tgt_ids) in enumerate(zip(links, src_words, tgt_words)):
        if len(src_ids) > src_len or len(tgt_ids) > tgt_len:
            raise AttnlabError(f"alignment_targets: pair {b} has more tokens than src_len/tgt_len")
        tokens_of: dict[int, list[int]] = {}  # source word -> its token positions
        for s, word in enumerate(src_ids):
            tokens_of.setdefault(word, []).append(s)
        linked: dict[int, list[int]] = {}  # target word -> its linked source words
        num_tgt_words = max(tgt_ids, default=-1) + 1
        for i, j in sorted(pairs):
            if i not in tokens_of or not 0 <= j < num_tgt_words:
                raise AttnlabError(
                    f"alignment_targets: link {i}-{j} of pair {b} is outside its "
                    f"{max(src_ids, default=-1) + 1} source and {num_tgt_words} target words"
                )
            linked.setdefault(j, []).append(i)
        for t, word in enumerate(tgt_ids):
            columns = [s for i in linked.get(word, ()) for s in tokens_of[i]]
            index += [(b, t, s) for s in columns]
            values += [1.0 / max(len(columns), 1)] * len(columns)
    targets = torch.zeros(len(links), tgt_len, src_len)
    if index:
        b, t, s = torch.tensor(index).unbind(1)
        targets[b, t, s] = torch.tensor(values)
    return targets


def guided_alignment_loss(weights: Tensor, targets: Tensor, *, eps: float = 1e-6) -> Tensor:
    """Cross-entropy of attention ``weights (B, T, S)`` against ``targets (B, T, S)``, in fp32.

    Averaged over the rows of ``targets`` that have a link (zero when none has). ``eps``
    keeps the loss and its gradient finite where the attention is exactly 0.
    """
    if weights.shape != targets.shape:
        raise AttnlabError(
            f"guided_alignment_loss: weights {tuple(weights.shape)} and targets {tuple(targets.shape)} differ"
        )
    g = targets.float()
    rows = (g.sum(dim=-1) > 0).sum()  # R: target tokens with a link
    cross_entropy = -(g * torch.log(weights.float() + eps)).sum()
    return cross_entropy / rows.clamp_min(1)
