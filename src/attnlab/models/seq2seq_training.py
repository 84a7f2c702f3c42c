"""Train the RNN translator (:class:`Seq2Seq`) on the same data, tokenizers, batches,
Trainer and checkpoints as the Transformer translator.

    splits     = load_splits(setup)                     synthetic corpus or user files
    tokenizers = word-level or BPE, trained on the training split (offline)
    model      = Seq2Seq(preset(setup.preset), attention=setup.attention, vocabularies)
    Trainer(model, TranslationBatches(train split), train_config).fit()

Adam (lr 1e-3) with a short warm-up and gradient clipping at 1 (RNNs need it). The
checkpoint folder holds the model, both tokenizers and ``seq2seq.json`` (this setup), and
loads with :func:`load_seq2seq` into a :class:`attnlab.translation.translator.Translator`
(translate, batched greedy or beam search).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from attnlab.config import config_from_dict, config_to_dict, preset
from attnlab.data.batching import TranslationBatches
from attnlab.data.tokenizer import Tokenizer
from attnlab.errors import AttnlabError
from attnlab.evaluation.metrics import bleu
from attnlab.io import read_json, write_json
from attnlab.models.seq2seq import SEQ2SEQ_PRESETS, Seq2Seq
from attnlab.models.seq2seq_attention import ATTENTION_NAMES
from attnlab.training import TrainConfig, Trainer, find_checkpoint
from attnlab.translation.training import TOKENIZERS, TrainedTranslator, load_splits, train_tokenizer
from attnlab.translation.translator import SRC_TOKENIZER, TGT_TOKENIZER, Translator

SETUP_FILE = "seq2seq.json"


@dataclass
class Seq2SeqSetup:
    """Data, tokenizers and model of an RNN translation run.

    ``data``/``tgt_data``/``corpus``/``tokenizer``/``vocab_size`` mean what they mean for
    ``attnlab train translate``; ``attention`` is one of :data:`ATTENTION_NAMES`;
    ``model_overrides`` replace fields of the :data:`SEQ2SEQ_PRESETS` preset.
    """

    data: str | None = None
    tgt_data: str | None = None
    corpus: str = "default"
    tokenizer: str = "word"
    vocab_size: int = 8000
    preset: str = "small"
    attention: str = "bahdanau"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 64
    eval_sentences: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if self.tokenizer not in TOKENIZERS:
            raise AttnlabError(f"tokenizer: expected one of {list(TOKENIZERS)}, got {self.tokenizer!r}")
        if self.preset not in SEQ2SEQ_PRESETS:
            raise AttnlabError(f"preset: expected one of {sorted(SEQ2SEQ_PRESETS)}, got {self.preset!r}")
        if self.attention not in ATTENTION_NAMES:
            raise AttnlabError(f"attention: expected one of {list(ATTENTION_NAMES)}, got {self.attention!r}")
        if self.tgt_data is not None and self.data is None:
            raise AttnlabError("tgt_data: give the source file as data too")


def seq2seq_train_config(**overrides: Any) -> TrainConfig:
    """Adam 1e-3, 100 warm-up steps, clipping at 1; ``overrides`` replace any field."""
    defaults = dict(out_dir="runs/seq2seq", steps=2000, lr=1e-3, schedule="cosine", warmup_steps=100, grad_clip=1.0)
    return TrainConfig(**{**defaults, **overrides})


def build_seq2seq(setup: Seq2SeqSetup, splits, tokenizers_from: Path | None = None) -> Translator:
    """A fresh model for the data; tokenizers trained on ``splits.train`` or read from a folder."""
    if tokenizers_from is not None:
        src_tok, tgt_tok = (Tokenizer.load(tokenizers_from / name) for name in (SRC_TOKENIZER, TGT_TOKENIZER))
    else:
        src_tok = train_tokenizer(setup.tokenizer, splits.train.src, setup.vocab_size)
        tgt_tok = train_tokenizer(setup.tokenizer, splits.train.tgt, setup.vocab_size)
    config = preset(
        SEQ2SEQ_PRESETS, setup.preset, src_vocab_size=src_tok.vocab_size, tgt_vocab_size=tgt_tok.vocab_size,
        pad_id=tgt_tok.pad_id, bos_id=tgt_tok.bos_id, eos_id=tgt_tok.eos_id, attention=setup.attention,
        **setup.model_overrides,
    )
    return Translator(Seq2Seq(config), src_tok, tgt_tok)


def load_seq2seq(ckpt: str | Path, device: str = "cpu") -> Translator:
    """A trained RNN translator from its checkpoint folder."""
    ckpt = Path(ckpt)
    model = Seq2Seq.from_pretrained(ckpt, map_location=device)
    src_tok, tgt_tok = (Tokenizer.load(ckpt / name) for name in (SRC_TOKENIZER, TGT_TOKENIZER))
    return Translator(model, src_tok, tgt_tok)


def seq2seq_loss(model: Seq2Seq, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(batch["src_ids"], batch["tgt_in"], batch["tgt_out"]).loss


def train_seq2seq(setup: Seq2SeqSetup, config: TrainConfig, resume: bool = False) -> TrainedTranslator:
    """Build (or resume) and train an RNN translator; the checkpoint folder is ``config.out_dir``."""
    out_dir = Path(config.out_dir)
    previous = find_checkpoint(out_dir) if resume else None
    if resume and previous is None:
        raise AttnlabError(f"--resume: no complete checkpoint in {out_dir} (train without --resume first)")
    if previous is not None:
        setup = config_from_dict(Seq2SeqSetup, read_json(previous / SETUP_FILE))
    splits = load_splits(setup)
    translator = build_seq2seq(setup, splits, tokenizers_from=previous)
    model = translator.model
    batches = TranslationBatches(
        splits.train, translator.src_tokenizer, translator.tgt_tokenizer, batch_size=setup.batch_size,
        max_len=model.config.max_len, seed=setup.seed,
    )
    valid = splits.valid.subset(list(range(min(setup.eval_sentences, len(splits.valid)))))

    def evaluate(_: Seq2Seq) -> dict[str, float]:
        return {"valid_bleu": bleu(translator.translate(valid.src), valid.tgt)}

    def save_extra(folder: Path) -> None:
        translator.save_tokenizers(folder)
        write_json(folder / SETUP_FILE, config_to_dict(setup))

    trainer = Trainer(model, batches, config, loss_fn=seq2seq_loss, count_tokens=batches.count_tokens,
                      evaluate=evaluate, save_extra=save_extra)
    result = trainer.fit(resume=resume)
    model.eval()
    return TrainedTranslator(translator, result, splits)

