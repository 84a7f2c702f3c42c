"""How good is a translator: BLEU, chrF, and how well its cross-attention aligns words.

BLEU and chrF (sacrebleu, corpus level, 0-100) score the decoded test split.

Alignment error rate (Och & Ney 2003) compares word links read off the cross-attention
with the gold alignments of the synthetic corpus:

    A_{l,h} = { (argmax_i a^{l,h}_{j,i}, j) : target word j }     (attention while predicting j,
                                                                     subwords averaged into words)
    AER     = 1 - (|A ∩ S| + |A ∩ P|) / (|A| + |S|)                 S = P = gold links

for every decoder layer l and head h, and for the attention averaged over all layers
and heads ("head average"). Teacher forcing on the reference target gives one attention
row per reference word.

Notation: N sentence pairs, L decoder layers, H heads, T target tokens, S source tokens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from attnlab.apps.translate.translator import Translator
from attnlab.data.batching import TranslationBatches
from attnlab.data.corpus import Alignment, ParallelCorpus
from attnlab.errors import AttnlabError
from attnlab.evaluation.metrics import alignment_error_rate, alignments_from_attention, bleu, chrf

# sacrebleu warns on every call that text ending in " ." looks tokenized: the synthetic
# corpus is tokenized by design, so the warning would only clutter the demo's output.
logging.getLogger("sacrebleu").setLevel(logging.ERROR)


@dataclass
class AlignmentScores:
    """``per_head (L, H)`` AER of each head; ``average``: AER of the all-head average."""

    per_head: torch.Tensor
    average: float

    @property
    def best(self) -> tuple[int, int, float]:
        """``(layer, head, AER)`` of the head that aligns best (0-based)."""
        index = int(self.per_head.argmin())
        layer, head = divmod(index, self.per_head.shape[1])
        return layer, head, float(self.per_head[layer, head])


@dataclass
class TranslationScores:
    bleu: float
    chrf: float
    alignment: AlignmentScores | None
    hypotheses: list[str]
    decode_seconds: float

    def summary(self, elapsed_s: float | None = None) -> str:
        """``BLEU <x> | chrF <y> | AER <z> (<whose>) | <time>``; AER: the best single head or the
        head-averaged map, whichever aligns better, and which one it is."""
        aer = "n/a"
        if self.alignment is not None:
            layer, head, best = self.alignment.best
            aer = (f"{self.alignment.average:.3f} (head-averaged map)" if self.alignment.average <= best
                   else f"{best:.3f} (layer {layer} head {head})")
        parts = [f"BLEU {self.bleu:.1f}", f"chrF {self.chrf:.1f}", f"AER {aer}"]
        if elapsed_s is not None:
            parts.append(f"{elapsed_s / 60:.1f} min")
        return " | ".join(parts)


@torch.no_grad()
def alignment_scores(translator: Translator, corpus: ParallelCorpus, batch_size: int = 64) -> AlignmentScores:
    """AER of every cross-attention head (and of their average) against ``corpus.alignments``."""
    if corpus.alignments is None:
        raise AttnlabError("corpus: has no gold alignments to compare the attention with")
    model = translator.model.eval()
    batches = TranslationBatches(
        corpus, translator.src_tokenizer, translator.tgt_tokenizer, batch_size=batch_size,
        max_len=model.config.max_len,
    )
    c = model.config
    links: dict[tuple[int, int] | str, list[Alignment]] = {}
    gold: list[Alignment] = []
    for indices, batch in batches.in_order():
        batch = {k: v.to(translator.device) for k, v in batch.items()}
        out = model(batch["src_ids"], batch["tgt_in"], need_weights=True)
        cross = torch.stack(out.attentions.of_kind("cross"), dim=1).float().cpu()  # (B, L, H, T, S)
        for row, n in enumerate(indices):
            src_words = translator.src_tokenizer.word_ids(corpus.src[n])
            tgt_words = translator.tgt_tokenizer.word_ids(corpus.tgt[n])
            weights = cross[row, :, :, : len(tgt_words), : len(src_words)]  # (L, H, T, S)
            for layer in range(c.num_decoder_layers):
                for head in range(c.num_heads):
                    found = alignments_from_attention(weights[layer, head], src_words, tgt_words)
                    links.setdefault((layer, head), []).append(found)
            links.setdefault("average", []).append(
                alignments_from_attention(weights.mean(dim=(0, 1)), src_words, tgt_words)
            )
            gold.append(corpus.alignments[n])
    per_head = torch.tensor([
        [alignment_error_rate(links[(layer, head)], gold) for head in range(c.num_heads)]
        for layer in range(c.num_decoder_layers)
    ])
    return AlignmentScores(per_head, alignment_error_rate(links["average"], gold))


def evaluate_translator(
    translator: Translator, corpus: ParallelCorpus, *, beam_size: int = 1, alpha: float = 0.6, batch_size: int = 64,
    on_progress: Callable[[int, int], None] | None = None,
) -> TranslationScores:
    """Decode ``corpus.src`` and score it; AER too when the corpus has gold alignments.
    ``on_progress(done, total)``: sentences decoded, after every batch."""
    if len(corpus) == 0:
        raise AttnlabError("corpus: no sentence pairs to evaluate")
    started = time.monotonic()
    hyps = translator.translate(corpus.src, beam_size=beam_size, alpha=alpha, batch_size=batch_size,
                                on_progress=on_progress)
    seconds = time.monotonic() - started
    aligned = alignment_scores(translator, corpus, batch_size) if corpus.alignments is not None else None
    return TranslationScores(bleu(hyps, corpus.tgt), chrf(hyps, corpus.tgt), aligned, hyps, seconds)
