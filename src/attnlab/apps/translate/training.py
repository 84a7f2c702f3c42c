"""Train a translator — the Transformer or the RNN encoder-decoder with any attention —
on the synthetic corpus or on your own parallel text.

    splits     = load_splits(setup)                     synthetic corpus, user files or gettext:LANG
    tokenizers = word-level, BPE or byte-level BPE, trained on the training split (offline)
    model      = Transformer | Seq2Seq(preset(setup.preset), vocabulary sizes and special ids)
    Trainer(model, TranslationBatches(train split), train_config).fit()

Both architectures share everything but the model: ``setup.model`` picks one from
:data:`ARCHITECTURES`. For the Transformer the optimizer is the paper's Adam
(beta2 = 0.98, eps = 1e-9, no weight decay) with linear warm-up
(:func:`paper_train_config`); the RNN takes plain Adam with clipping
(:func:`rnn_train_config`). The loss is label-smoothed cross-entropy. Validation
reports the teacher-forced loss and greedy BLEU on the first ``eval_sentences`` pairs.
``guided_alignment`` > 0 adds the guided alignment loss on the gold word alignments of the
training data (the synthetic corpus has them; user data through a Pharaoh file).
The checkpoint folder is a :class:`~attnlab.apps.translate.translator.Translator` folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from attnlab.apps.common import EVAL_SHARE, budgeted
from attnlab.apps.translate.averaging import LastSaves
from attnlab.apps.translate.decode_budget import evaluation_seconds
from attnlab.apps.translate.translator import SRC_TOKENIZER, TGT_TOKENIZER, Translator
from attnlab.config import config_from_dict, config_to_dict, preset
from attnlab.data.batching import TranslationBatches
from attnlab.data.bpe import train_translation_bpe
from attnlab.data.corpus import CorpusSplits
from attnlab.data.gettext_corpus import is_gettext_spec, load_gettext, parse_spec
from attnlab.data.parallel import load_parallel
from attnlab.data.synthetic import synthetic_corpus
from attnlab.data.tokenizer import BPETokenizer, Tokenizer, WordTokenizer
from attnlab.errors import AttnlabError
from attnlab.evaluation.metrics import bleu
from attnlab.evaluation.real_language import bleu_tokenizer
from attnlab.io import read_json, write_json
from attnlab.models.base import PretrainedModel
from attnlab.models.seq2seq import SEQ2SEQ_PRESETS, Seq2Seq
from attnlab.models.seq2seq_attention import ATTENTION_NAMES
from attnlab.models.transformer import TRANSFORMER_PRESETS, Transformer
from attnlab.training import (
    TrainConfig,
    Trainer,
    TrainResult,
    distributed,
    find_checkpoint,
    resolve_device,
    set_seed,
)
from attnlab.training.progress import Heartbeat
from attnlab.training.time_reserve import TimeReserve

SETUP_FILE = "translator.json"
AVERAGED_FILE = "averaged.json"  # which saves the folder's weights average (setup.average_last > 1)
TOKENIZERS = ("word", "bpe", "byte_bpe")
# setup.model -> (model class, its presets)
ARCHITECTURES: dict[str, tuple[type[PretrainedModel], dict[str, Any]]] = {
    "transformer": (Transformer, TRANSFORMER_PRESETS),
    "seq2seq": (Seq2Seq, SEQ2SEQ_PRESETS),
}


@dataclass
class TranslatorSetup:
    """Data, tokenizers, model and batches of a translation run.

    ``data``: a TSV file, a folder of ``{train,valid,test}.tsv`` or (with ``tgt_data``) a
    source text file; ``None`` generates the synthetic corpus preset ``corpus``.
    ``vocab_size`` is the BPE vocabulary size (an upper bound for word-level).
    ``model`` is ``"transformer"`` or ``"seq2seq"`` (the RNN translator, whose decoder
    uses ``attention``, one of :data:`~attnlab.models.seq2seq_attention.ATTENTION_NAMES`);
    ``model_overrides`` replace fields of the model's ``preset``. ``align_data``: Pharaoh
    word alignments of ``data`` (a TSV, or the two text files). ``guided_alignment`` is the
    weight lambda of guided alignment training (the model's ``alignment_weight``; 0: off),
    which needs gold alignments in the training data.
    """

    data: str | None = None  # also "gettext:LANG": the gettext catalogs on this machine (+ catalogs)
    tgt_data: str | None = None
    catalogs: list[str] = field(default_factory=list)
    corpus: str = "default"
    tokenizer: str = "word"
    vocab_size: int = 8000
    model: str = "transformer"
    preset: str = "small"
    attention: str = "bahdanau"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    align_data: str | None = None
    guided_alignment: float = 0.0
    batch_size: int | None = 64  # None: max_tokens alone sizes the batches
    max_tokens: int | None = None
    shared_vocab: bool = False
    copy_attention: bool = False
    token_dropout: float = 0.0
    average_last: int = 1
    eval_sentences: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if self.tokenizer not in TOKENIZERS:
            raise AttnlabError(f"tokenizer: expected one of {list(TOKENIZERS)}, got {self.tokenizer!r}")
        if self.model not in ARCHITECTURES:
            raise AttnlabError(f"model: expected one of {list(ARCHITECTURES)}, got {self.model!r}")
        presets = ARCHITECTURES[self.model][1]
        if self.preset not in presets:
            raise AttnlabError(f"preset: expected one of {sorted(presets)} for {self.model}, got {self.preset!r}")
        if self.model == "seq2seq" and self.attention not in ATTENTION_NAMES:
            raise AttnlabError(f"attention: expected one of {list(ATTENTION_NAMES)}, got {self.attention!r}")
        if self.tgt_data is not None and self.data is None:
            raise AttnlabError("tgt_data: give the source file as data too")
        if self.catalogs and not is_gettext_spec(self.data):
            raise AttnlabError("catalogs (--catalogs): they add to --data gettext:LANG; give that too")
        if is_gettext_spec(self.data):
            parse_spec(self.data)
            if self.tgt_data is not None or self.align_data is not None:
                raise AttnlabError(f"--data {self.data}: the catalogs hold both sides; drop --tgt-data/--align")
        if self.align_data is not None and self.data is None:
            raise AttnlabError("align_data (--align): give the data it aligns (--data) too; the synthetic corpus has its own")
        if self.guided_alignment < 0:
            raise AttnlabError(f"guided_alignment: expected a weight >= 0, got {self.guided_alignment}")
        if not 0 <= self.token_dropout < 1:
            raise AttnlabError(f"token_dropout: expected a probability in [0, 1), got {self.token_dropout}")
        if self.average_last < 1:
            raise AttnlabError(f"average_last: expected a number of saves >= 1, got {self.average_last}")
        if self.shared_vocab and self.model != "transformer":
            raise AttnlabError("shared_vocab: only the Transformer ties its embeddings; the RNN keeps one per side")
        if self.copy_attention and not (self.shared_vocab and self.model == "transformer"):
            raise AttnlabError("copy_attention (--copy-attention): copies source tokens into the output, so it needs "
                               "the Transformer with one joint vocabulary (--shared-vocab)")


@dataclass
class TrainedTranslator:
    translator: Translator
    result: TrainResult
    splits: CorpusSplits


def load_splits(setup: TranslatorSetup, progress: bool = False) -> CorpusSplits:
    """The synthetic corpus (``progress``: counted pairs, a bar on a terminal, periodic lines
    elsewhere), the user's files or the gettext catalogs of ``setup.data``."""
    if setup.data is None:
        with Heartbeat("generating the synthetic corpus", enabled=progress) as beat:
            return synthetic_corpus(setup.corpus, seed=setup.seed, on_progress=beat.update)
    if is_gettext_spec(setup.data):
        return load_gettext(setup.data, setup.catalogs, seed=setup.seed)
    return load_parallel(setup.data, setup.tgt_data, alignment_path=setup.align_data, seed=setup.seed)


def target_bleu_tokenizer(setup: TranslatorSetup) -> str:
    """sacrebleu's tokenizer for the target side: the language's own for gettext data."""
    return bleu_tokenizer(parse_spec(setup.data).language) if is_gettext_spec(setup.data) else "13a"


def train_tokenizer(kind: str, texts: list[str], vocab_size: int) -> Tokenizer:
    if kind == "bpe":
        return BPETokenizer.train(texts, vocab_size=vocab_size)
    if kind == "byte_bpe":
        return train_translation_bpe(texts, vocab_size)
    return WordTokenizer.train(texts, max_size=vocab_size)


def translation_tokenizers(
    kind: str, vocab_size: int, splits: CorpusSplits, tokenizers_from: Path | None = None, shared: bool = False
) -> tuple[Tokenizer, Tokenizer]:
    """Source and target tokenizers: read from a translator folder, or trained on ``splits.train``
    (``shared``: one joint vocabulary learnt from both sides, the same object twice)."""
    if tokenizers_from is not None:
        return Tokenizer.load(tokenizers_from / SRC_TOKENIZER), Tokenizer.load(tokenizers_from / TGT_TOKENIZER)

    def train() -> tuple[Tokenizer, Tokenizer]:
        if shared:
            joint = train_tokenizer(kind, splits.train.src + splits.train.tgt, vocab_size)
            return joint, joint
        return train_tokenizer(kind, splits.train.src, vocab_size), train_tokenizer(kind, splits.train.tgt, vocab_size)

    # rank 0's on every rank under torchrun: training a BPE is not deterministic across processes
    return distributed.from_rank0(train)


def build_translator(setup: TranslatorSetup, splits: CorpusSplits, tokenizers_from: Path | None = None) -> Translator:
    """A fresh model for the data; tokenizers trained on ``splits.train`` or read from a folder."""
    src_tok, tgt_tok = translation_tokenizers(setup.tokenizer, setup.vocab_size, splits, tokenizers_from,
                                              shared=setup.shared_vocab)
    model_class, presets = ARCHITECTURES[setup.model]
    overrides = {"attention": setup.attention} if setup.model == "seq2seq" else {}
    if setup.shared_vocab:
        overrides["share_embeddings"] = True  # source, target and output embeddings: one matrix
    if setup.guided_alignment:
        overrides["alignment_weight"] = setup.guided_alignment
    if setup.copy_attention:
        overrides["copy_attention"] = True  # pointer-generator over the joint vocabulary
    config = preset(
        presets, setup.preset,
        src_vocab_size=src_tok.vocab_size, tgt_vocab_size=tgt_tok.vocab_size,
        pad_id=tgt_tok.pad_id, bos_id=tgt_tok.bos_id, eos_id=tgt_tok.eos_id,
        **{**overrides, **setup.model_overrides},
    )
    return Translator(model_class(config), src_tok, tgt_tok)


def paper_train_config(**overrides: Any) -> TrainConfig:
    """The paper's Adam (0.9, 0.98, 1e-9) with warm-up; ``overrides`` replace any field."""
    defaults = dict(
        out_dir="runs/translate", steps=2000, lr=1e-3, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0,
        schedule="cosine", warmup_steps=200, grad_clip=1.0, bf16=False, eval_every=0,
    )
    return TrainConfig(**{**defaults, **overrides})


def rnn_train_config(**overrides: Any) -> TrainConfig:
    """For the RNN translator: Adam 1e-3, 100 warm-up steps, clipping at 1 (RNNs need it)."""
    defaults = dict(out_dir="runs/seq2seq", steps=2000, lr=1e-3, schedule="cosine", warmup_steps=100, grad_clip=1.0)
    return TrainConfig(**{**defaults, **overrides})


def translation_loss(model: PretrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's loss on a batch; with the guided alignment term when the batch has ``align``."""
    return model(batch["src_ids"], batch["tgt_in"], batch["tgt_out"], align=batch.get("align")).loss


def make_validation(translator: Translator, batches: TranslationBatches, splits: CorpusSplits, sentences: int,
                    tokenize: str = "13a"):
    """The Trainer's ``evaluate``: mean validation loss and greedy BLEU on a prefix of valid."""
    valid = splits.valid.subset(list(range(min(sentences, len(splits.valid)))))

    def evaluate(model: PretrainedModel) -> dict[str, float]:
        losses = [float(translation_loss(model, batch)) for _, batch in batches.in_order()]
        hyps = translator.translate(valid.src)
        return {"valid_loss": sum(losses) / len(losses), "valid_bleu": bleu(hyps, valid.tgt, tokenize=tokenize)}

    return evaluate


def train_translator(
    setup: TranslatorSetup,
    config: TrainConfig,
    resume: bool = False,
    splits: CorpusSplits | None = None,
    fit_budget: bool = False,
    started: float | None = None,
    test_beam: int | None = None,
) -> TrainedTranslator:
    """Build (or resume) and train a translator; the checkpoint folder is ``config.out_dir``.

    ``splits`` (already loaded data) replaces ``load_splits(setup)``. The time budget
    ``config.max_time_s`` (counted from ``started``) follows the one policy of every app
    (:func:`attnlab.apps.common.budgeted`); ``fit_budget`` (no ``--steps``): the budget
    sizes ``config.steps``, up or down, so the learning-rate schedule ends inside it.
    ``test_beam``: the test split is decoded at this beam after training, inside the budget;
    the run measures what that needs at half its training and trains for the rest
    (:func:`attnlab.apps.translate.decode_budget.evaluation_seconds`).
    """
    out_dir = Path(config.out_dir)
    previous = find_checkpoint(out_dir) if resume else None
    if resume and previous is None:
        raise AttnlabError(f"--resume: no complete checkpoint in {out_dir} (no readable trainer_state.json); "
                           "train without --resume first")
    if previous is not None:
        setup = config_from_dict(TranslatorSetup, read_json(previous / SETUP_FILE))
    if splits is None:
        splits = load_splits(setup, progress=config.progress and distributed.current().main)
    set_seed(config.seed)  # the initial weights are part of the run
    translator = build_translator(setup, splits, tokenizers_from=previous)
    model = translator.model
    guided = model.config.alignment_weight > 0
    if guided and splits.train.alignments is None:
        raise AttnlabError(
            "guided alignment: the training data has no gold word alignments; give a Pharaoh file "
            "(--align / align_data) with a TSV or two text files, or {split}.align files in a folder"
        )
    batches = TranslationBatches(
        splits.train, translator.src_tokenizer, translator.tgt_tokenizer, batch_size=setup.batch_size,
        max_tokens=setup.max_tokens, max_len=model.config.max_len, seed=setup.seed, alignments=guided,
        token_dropout=setup.token_dropout, unk_id=translator.src_tokenizer.unk_id,
    )
    valid = TranslationBatches(
        splits.valid, translator.src_tokenizer, translator.tgt_tokenizer, batch_size=128,
        max_len=model.config.max_len, seed=setup.seed,
    )
    model.to(resolve_device(config.device))  # the budget's probe updates run where the run will
    budget = config.max_time_s
    config = budgeted(config, model, batches, loss_fn=translation_loss, fit=fit_budget, resume=resume, started=started)
    reserve = None
    if test_beam is not None and budget is not None and fit_budget:
        held = EVAL_SHARE * budget
        reserve = TimeReserve(held, lambda: evaluation_seconds(translator, splits.test.src, test_beam, held_s=held))

    last_saves = LastSaves(setup.average_last)

    def save_extra(folder: Path) -> None:
        translator.save_tokenizers(folder)
        write_json(folder / SETUP_FILE, config_to_dict(setup))
        last_saves.record(model, trainer.step)

    trainer = Trainer(
        model, batches, config, loss_fn=translation_loss, count_tokens=batches.count_tokens,
        loss_units=batches.count_tokens,  # a mean over target tokens: ranks weigh in by theirs
        evaluate=make_validation(translator, valid, splits, setup.eval_sentences, target_bleu_tokenizer(setup)),
        save_extra=save_extra, reserve=reserve,
    )
    result = trainer.fit(resume=resume)
    if setup.average_last > 1 and not result.interrupted and distributed.current().main:
        averaged = last_saves.average_into(model)
        if len(averaged) > 1:  # the folder's weights become the average (its optimizer state stays the last's)
            model.save_pretrained(out_dir)
            write_json(out_dir / AVERAGED_FILE, {"steps": averaged})
    model.eval()
    return TrainedTranslator(translator, result, splits)

