"""A trained translator: the model and its two tokenizers, saved together in one folder.

    ckpt/
      config.json, model.safetensors     the Transformer or Seq2Seq model (save_pretrained)
      src_tokenizer/, tgt_tokenizer/     Tokenizer.save folders
      translator.json                    how the data was set up (TranslatorSetup)

:meth:`Translator.translate` turns sentences into sentences (batched greedy or beam
search; by default constrained to emit exactly the source's placeholders, where the target
vocabulary holds them as tokens: :mod:`attnlab.evaluation.decoding_constraints`); :meth:`Translator.cross_attention` gives the cross-attention of a sentence pair
per layer and head, on tokens, with the word each token belongs to.

Notation: L decoder layers, H heads, T target tokens, S source tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from attnlab.data.placeholders import ARG_NUMBER, find_placeholders, placeholder_signature
from attnlab.data.placeholders_repair import restore_placeholders, stand_in_placeholders
from attnlab.data.tokenizer import Tokenizer
from attnlab.errors import AttnlabError
from attnlab.evaluation.decoding import decode
from attnlab.evaluation.decoding_constraints import PlaceholderConstraint
from attnlab.io import CONFIG_FILE, read_json
from attnlab.models.base import PretrainedModel
from attnlab.models.seq2seq import Seq2Seq
from attnlab.models.transformer import Transformer

SRC_TOKENIZER, TGT_TOKENIZER = "src_tokenizer", "tgt_tokenizer"
# model_type in config.json -> the model class a translator folder may hold
TRANSLATION_MODELS: dict[str, type[PretrainedModel]] = {cls.model_type: cls for cls in (Transformer, Seq2Seq)}


@dataclass
class PairAttention:
    """Cross-attention of one sentence pair: ``weights (L, H, T, S)`` on tokens.

    Row ``t`` is the attention while predicting target token ``t``; ``src_words[s]`` /
    ``tgt_words[t]`` index the whitespace words the tokens came from.
    """

    weights: Tensor
    src_tokens: list[str]
    tgt_tokens: list[str]
    src_words: list[int]
    tgt_words: list[int]


class Translator:
    """``Translator(model, src_tokenizer, tgt_tokenizer)``; ``Translator.load(ckpt)``."""

    def __init__(self, model: Transformer | Seq2Seq, src_tokenizer: Tokenizer, tgt_tokenizer: Tokenizer):
        c = model.config
        want = {"source pad": (src_tokenizer.pad_id, c.pad_id), "target pad": (tgt_tokenizer.pad_id, c.pad_id),
                "bos": (tgt_tokenizer.bos_id, c.bos_id), "eos": (tgt_tokenizer.eos_id, c.eos_id)}
        for name, (have, expected) in want.items():
            if have != expected:
                raise AttnlabError(f"tokenizers: {name} id is {have} but the model expects {expected}")
        self.model, self.src_tokenizer, self.tgt_tokenizer = model, src_tokenizer, tgt_tokenizer

    @classmethod
    def load(cls, ckpt: str | Path, device: str = "cpu") -> Translator:
        """Read a translator folder (a training checkpoint or :meth:`save` output)."""
        ckpt = Path(ckpt)
        if not ckpt.is_dir():
            raise AttnlabError(f"--ckpt {ckpt}: checkpoint folder not found")
        model_type = read_json(ckpt / CONFIG_FILE).get("model_type")
        if model_type not in TRANSLATION_MODELS:
            raise AttnlabError(f"--ckpt {ckpt / CONFIG_FILE}: model_type {model_type!r} is not a translator's "
                               f"({sorted(TRANSLATION_MODELS)})")
        model = TRANSLATION_MODELS[model_type].from_pretrained(ckpt, map_location=device)
        return cls(model, Tokenizer.load(ckpt / SRC_TOKENIZER), Tokenizer.load(ckpt / TGT_TOKENIZER))

    def save_tokenizers(self, directory: str | Path) -> None:
        self.src_tokenizer.save(Path(directory) / SRC_TOKENIZER)
        self.tgt_tokenizer.save(Path(directory) / TGT_TOKENIZER)

    def save(self, directory: str | Path) -> None:
        self.model.save_pretrained(directory)
        self.save_tokenizers(directory)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode_sources(self, sentences: list[str]) -> Tensor:
        """Padded source ids ``(B, S)``; a sentence over the model's limit is an error naming it."""
        ids = self.src_tokenizer.encode_batch(sentences)
        limit = self.model.config.max_len
        for n, row in enumerate(ids):
            if len(row) > limit:
                raise AttnlabError(
                    f"sentence {n + 1} has {len(row)} tokens; this model translates at most max_len={limit}"
                )
        width = max(1, max(len(row) for row in ids))
        batch = torch.full((len(ids), width), self.model.config.pad_id, dtype=torch.long)
        for n, row in enumerate(ids):
            batch[n, : len(row)] = torch.tensor(row, dtype=torch.long)
        return batch.to(self.device)

    def placeholder_groups(self) -> dict[str, list[int]]:
        """Target token ids of the placeholders, grouped by what a translation must keep
        (``%s``, ``%1$s``, ``%2$s`` -> ``"%s"``)."""
        if not hasattr(self, "_groups"):
            groups: dict[str, list[int]] = {}
            added = getattr(self.tgt_tokenizer.backend, "get_added_tokens_decoder", dict)()
            for token_id, token in sorted(added.items()):
                if find_placeholders(token.content) == [token.content]:
                    groups.setdefault(ARG_NUMBER.sub("%", token.content), []).append(token_id)
            self._groups = groups
        return self._groups

    def placeholder_constraint(self, sentences: list[str], max_len: int) -> PlaceholderConstraint | None:
        """The constraint of :mod:`~attnlab.evaluation.decoding_constraints` for ``sentences``
        (a sentence without placeholders may not emit one either; None when the vocabulary
        holds no placeholder whole)."""
        groups = self.placeholder_groups()
        if not groups:
            return None
        needed = [placeholder_signature(s) for s in sentences]
        keys = sorted(groups)
        token_group = torch.full((self.model.config.tgt_vocab_size,), -1, dtype=torch.long)
        for g, key in enumerate(keys):
            token_group[groups[key]] = g
        required = torch.tensor([[need.get(key, 0) for key in keys] for need in needed], dtype=torch.long)
        return PlaceholderConstraint(token_group.to(self.device), required.to(self.device), self.model.config.eos_id,
                                     max_len)

    @torch.no_grad()
    def translate(
        self, sentences: list[str], *, beam_size: int = 1, alpha: float = 0.6, batch_size: int = 64,
        constrain: bool = True, on_progress: Callable[[int, int], None] | None = None,
    ) -> list[str]:
        """Translate whitespace-separated ``sentences`` (batched, sorted by length inside);
        ``constrain``: each output holds exactly its source's placeholders wherever the
        vocabulary allows (:meth:`placeholder_constraint`); a printf placeholder it lacks
        (``%.250s``) is translated as the plain one (``%s``) and put back in order.
        ``on_progress(done, total)``: sentences decoded so far, after every batch."""
        if constrain:
            known = set(self.placeholder_groups())
            given, sentences = sentences, [stand_in_placeholders(s, known) for s in sentences]
        self.model.eval()
        order = sorted(range(len(sentences)), key=lambda n: len(sentences[n].split()))
        out: list[str] = [""] * len(sentences)
        c = self.model.config
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            src = self.encode_sources([sentences[n] for n in rows])
            max_len = min(c.max_len, 2 * src.shape[1] + 10)
            constraint = self.placeholder_constraint([sentences[n] for n in rows], max_len) if constrain else None
            hyps = decode(self.model, src, bos_id=c.bos_id, eos_id=c.eos_id, max_len=max_len,
                          beam_size=beam_size, alpha=alpha, constraint=constraint)
            for n, tokens in zip(rows, hyps.tokens):
                out[n] = self.tgt_tokenizer.decode(tokens)
            if on_progress is not None:
                on_progress(start + len(rows), len(order))
        if constrain:
            out = [restore_placeholders(g, o) if g != s else o for g, s, o in zip(given, sentences, out)]
        return out

    @torch.no_grad()
    def cross_attention(self, source: str, target: str) -> PairAttention:
        """Teacher-forced cross-attention of ``target`` given ``source``, every layer and head."""
        self.model.eval()
        src = self.encode_sources([source])
        tgt = self.tgt_tokenizer.encode(target)
        tgt_in = torch.tensor([[self.model.config.bos_id, *tgt]], device=self.device)
        out = self.model(src, tgt_in, need_weights=True)
        weights = torch.stack(out.attentions.of_kind("cross"))[:, 0, :, : len(tgt)]  # (L, H, T, S)
        return PairAttention(
            weights.float().cpu(), self.src_tokenizer.tokens(source), self.tgt_tokenizer.tokens(target),
            self.src_tokenizer.word_ids(source), self.tgt_tokenizer.word_ids(target),
        )
