"""BERT on text: pre-training (masked LM + next sentence), fine-tuning, fill-mask, attention.

    from attnlab.apps import bert
    trained = bert.pretrain(bert.MLMSettings(out="runs/mlm", steps=300))
    tuned = bert.finetune(bert.ClassifySettings(ckpt="runs/mlm", out="runs/classify"))
    bert.fill_mask(*bert.load("runs/mlm"), "return the [MASK] of the list")
    explained = bert.attentions(bert.load("runs/mlm"), ["the function returns a list"])

``pretrain``: WordPiece on the training sentences, a BERT with MLM + NSP heads, the
Trainer on :class:`~attnlab.data.mlm.MLMBatches`; validation reports MLM accuracy (on
the chosen 15%) and NSP accuracy on held-out documents. ``finetune``: the pre-trained
encoder with a fresh classifier head; test accuracy against the majority baseline. The
embedded default text is the Python standard library's source (a document per file,
split by file); the default classification task tells a line of code from a line of
prose (comment or docstring) in that source.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.apps.common import (
    TrainSettings,
    at_least,
    at_most,
    check_ckpt,
    check_out,
    run_config,
)
from attnlab.attention.maps import Explained
from attnlab.data.mlm import MLMBatches, pad_batch, read_documents, source_documents, source_lines
from attnlab.data.shuffle import EpochShuffler
from attnlab.data.stdlib_corpus import is_validation, stdlib_files, stdlib_root
from attnlab.data.tokenizer import Tokenizer
from attnlab.data.wordpiece import WordPieceTokenizer, tokenizer_from_folder
from attnlab.errors import AttnlabError
from attnlab.models.bert import BERT, bert_config
from attnlab.models.bert import fill_mask as _fill_mask
from attnlab.training import Trainer, TrainResult, distributed
from attnlab.validation import read_text

VALIDATION_FRACTION = 0.1
EVAL_BATCHES = 4
MAX_LEN = 512  # tokens per text: BERT's position table (max_positions) is at most this long
DEFAULT_TEXT = "the function returns a sorted list of the keys"


@dataclass
class MLMSettings(TrainSettings):
    """``data`` None: the standard library's source; else a text file, one sentence per
    line, blank lines between documents."""

    data: str | None = None
    preset: str = "small"
    vocab_size: int = 4000
    max_len: int = 64
    max_files: int = 400
    out: str = "runs/mlm"
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(16, vocab_size=self.vocab_size)
        at_least(8, max_len=self.max_len)
        at_most(MAX_LEN, max_len=self.max_len)
        at_least(1, max_files=self.max_files)


@dataclass
class ClassifySettings(TrainSettings):
    """``ckpt``: a pre-trained BERT folder; ``data`` None: code vs prose lines of the
    standard library, else a TSV of ``text<TAB>label`` lines (10% held out)."""

    ckpt: str = "runs/mlm"
    data: str | None = None
    max_len: int = 64
    max_examples: int = 6000
    out: str = "runs/classify"
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(8, max_len=self.max_len)
        at_most(MAX_LEN, max_len=self.max_len)
        at_least(10, max_examples=self.max_examples)


class LoadedBERT(NamedTuple):
    model: BERT
    tokenizer: Tokenizer


@dataclass
class TrainedBERT:
    model: BERT
    tokenizer: Tokenizer
    result: TrainResult
    summary: str


def stdlib_split(max_files: int) -> tuple[list[Path], list[Path]]:
    """Training and validation files of the standard library, split by file (at most
    ``max_files`` training files, spread evenly over the library)."""
    root = stdlib_root()
    files = stdlib_files(root)
    valid = [f for f in files if is_validation(f.relative_to(root).as_posix(), VALIDATION_FRACTION)]
    train = [f for f in files if f not in set(valid)]
    stride = max(1, len(train) // max(max_files, 1))
    return train[::stride][:max_files], valid[: max(max_files // 8, 8)]


def mlm_documents(data: str | None, max_files: int) -> tuple[list[list[str]], list[list[str]]]:
    """``(training, validation)`` documents: the user's file (last 10% of its documents
    held out) or the standard library split by file."""
    if data is None:
        train, valid = stdlib_split(max_files)
        return source_documents(train), source_documents(valid)
    documents = read_documents(data)
    if len(documents) < 2:
        raise AttnlabError(f"--data {data}: need at least 2 documents separated by blank lines")
    held_out = max(2, round(len(documents) * VALIDATION_FRACTION))
    if len(documents) - held_out < 2:  # a tiny file: validate on the training documents
        return documents, documents
    return documents[:-held_out], documents[-held_out:]


def mlm_nsp_terms(model: BERT, batch: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor | int]]:
    """BERT's pre-training loss as its two means and what each is over (masked tokens,
    sentence pairs), so several ranks add up to the loss of the whole batch exactly
    (attnlab.training.losses); their sum is the model's ``loss``."""
    out = model(**batch)
    chosen = batch["mlm_labels"] != -100
    mlm = F.cross_entropy(out.mlm_logits, batch["mlm_labels"][chosen])
    nsp = F.cross_entropy(out.nsp_logits, batch["next_sentence_label"])
    return {"mlm": (mlm, chosen.sum()), "nsp": (nsp, len(batch["next_sentence_label"]))}


def pretrain(settings: MLMSettings) -> TrainedBERT:
    """Pre-train a BERT (MLM + NSP) on ``settings.data`` with the shared Trainer."""
    check_out(settings.out, resume=settings.resume, overwrite=settings.overwrite, wait=settings.wait, kinds=("bert",))
    settings.apply_threads()
    train_docs, valid_docs = mlm_documents(settings.data, settings.max_files)
    if settings.resume:
        tokenizer = Tokenizer.load(settings.out)
    else:
        tokenizer = distributed.from_rank0(  # the same vocabulary on every rank (training it is not deterministic)
            lambda: WordPieceTokenizer.train((s for d in train_docs for s in d), vocab_size=settings.vocab_size))
    overrides = {} if settings.dropout is None else {"dropout": settings.dropout, "attention_dropout": settings.dropout}
    model_config = bert_config(settings.preset, vocab_size=tokenizer.vocab_size, head="pretraining",
                               max_positions=max(settings.max_len, 64), pad_token_id=tokenizer.pad_id, **overrides)
    torch.manual_seed(settings.seed)  # the initial weights are part of the run
    model = BERT(model_config)
    data = MLMBatches(train_docs, tokenizer, settings.batch_size, settings.max_len, seed=settings.seed)
    held_out = MLMBatches(valid_docs, tokenizer, 64, settings.max_len, seed=settings.seed + 1)
    valid = [held_out.batch(i) for i in range(EVAL_BATCHES)]

    def evaluate(m: BERT) -> dict[str, float]:
        hits = total = nsp_hits = nsp_total = 0
        for batch in valid:
            out = m(**_to(batch, m))
            chosen = batch["mlm_labels"] != -100
            hits += (out.mlm_logits.argmax(-1).cpu()[chosen] == batch["mlm_labels"][chosen]).sum().item()
            total += chosen.sum().item()
            nsp_hits += (out.nsp_logits.argmax(-1).cpu() == batch["next_sentence_label"]).sum().item()
            nsp_total += len(batch["next_sentence_label"])
        return {"mlm_accuracy": hits / total, "nsp_accuracy": nsp_hits / nsp_total}

    config = run_config(settings, model, data, default_steps=DEFAULT_MLM_STEPS, evaluations=5)
    result = Trainer(model, data, config, loss_fn=mlm_nsp_terms, evaluate=evaluate,
                     save_extra=tokenizer.save).fit(resume=settings.resume)
    m = result.metrics
    summary = (f"validation: MLM accuracy {m.get('mlm_accuracy', 0):.3f} | NSP accuracy {m.get('nsp_accuracy', 0):.3f} "
               f"({sum(map(len, train_docs))} training sentences, vocab {tokenizer.vocab_size})")
    return TrainedBERT(model, tokenizer, result, summary)


DEFAULT_MLM_STEPS, DEFAULT_CLASSIFY_STEPS = 1500, 400


def _to(batch: dict[str, Tensor], model: torch.nn.Module) -> dict[str, Tensor]:
    device = next(model.parameters()).device
    return {k: v.to(device) for k, v in batch.items() if k not in ("mlm_labels", "next_sentence_label", "labels")}


# --- fine-tuning -----------------------------------------------------------------------------
def code_or_prose(max_examples: int, seed: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The default task: is a standard-library line code or prose? Balanced, split by file."""
    train_files, valid_files = stdlib_split(300)
    rng = random.Random(seed)

    def examples(files: list[Path], count: int) -> list[tuple[str, str]]:
        lines = [(text, "prose" if prose else "code") for f in files
                 for text, prose in source_lines(f.read_text(encoding="utf-8", errors="replace"))]
        by_label = {name: [row for row in lines if row[1] == name] for name in ("code", "prose")}
        rows = [row for group in by_label.values() for row in rng.sample(group, min(len(group), count // 2))]
        rng.shuffle(rows)
        return rows

    return examples(train_files, max_examples), examples(valid_files, max(max_examples // 6, 200))


class TextBatches:
    """Step-indexed classification batches ``input_ids, token_type_ids, attention_mask, labels``."""

    def __init__(self, rows: list[tuple[list[int], int]], batch_size: int, pad_id: int, seed: int = 0):
        self.rows, self.pad_id = rows, pad_id
        self.shuffler = EpochShuffler(len(rows), batch_size, seed)

    def collate(self, rows: list[tuple[list[int], int]]) -> dict[str, Tensor]:
        batch = pad_batch([ids for ids, _ in rows], [[0] * len(ids) for ids, _ in rows], self.pad_id)
        batch["labels"] = torch.tensor([label for _, label in rows])
        return batch

    def batch(self, step: int) -> dict[str, Tensor]:
        return self.collate([self.rows[i] for i in self.shuffler.indices(step)])


def finetune(settings: ClassifySettings) -> TrainedBERT:
    """Fine-tune the pre-trained BERT in ``settings.ckpt`` with a fresh classifier head."""
    check_out(settings.out, resume=settings.resume, overwrite=settings.overwrite, wait=settings.wait, kinds=("bert",))
    settings.apply_threads()
    pretrained, tokenizer = load(settings.ckpt)
    if settings.data:
        train, test = split_tsv(settings.data, settings.seed)
    else:
        train, test = code_or_prose(settings.max_examples, settings.seed)
    labels = sorted({label for _, label in train + test})
    torch.manual_seed(settings.seed)  # the fresh head is part of the run
    if settings.dropout is not None:  # --dropout: every dropout of the fine-tuned model, the head's too
        pretrained.config = dataclasses.replace(pretrained.config, dropout=settings.dropout,
                                                attention_dropout=settings.dropout, classifier_dropout=settings.dropout)
    model = pretrained.with_head("classifier", labels)
    limit = min(settings.max_len, model.config.max_positions) - 2

    def encode(rows: list[tuple[str, str]]) -> list[tuple[list[int], int]]:
        ids = tokenizer.encode_batch([text for text, _ in rows])
        return [([tokenizer.cls_id, *x[:limit], tokenizer.sep_id], labels.index(y)) for x, (_, y) in zip(ids, rows)]

    data = TextBatches(encode(train), settings.batch_size, tokenizer.pad_id, seed=settings.seed)
    test_rows = encode(test)

    def evaluate(m: BERT) -> dict[str, float]:
        hits = 0
        for start in range(0, len(test_rows), 128):
            batch = data.collate(test_rows[start : start + 128])
            hits += (m(**_to(batch, m)).logits.argmax(-1).cpu() == batch["labels"]).sum().item()
        return {"test_accuracy": hits / len(test_rows)}

    config = run_config(settings, model, data, default_steps=DEFAULT_CLASSIFY_STEPS, evaluations=4)
    result = Trainer(model, data, config, evaluate=evaluate, save_extra=tokenizer.save).fit(resume=settings.resume)
    majority = Counter(label for _, label in test).most_common(1)[0][1] / len(test)
    summary = (f"test accuracy {result.metrics.get('test_accuracy', 0):.3f} on {len(test)} examples "
               f"(majority class {majority:.3f}; labels {labels})")
    return TrainedBERT(model, tokenizer, result, summary)


def load(ckpt: str | Path, device: str = "cpu") -> LoadedBERT:
    """A BERT checkpoint folder and the tokenizer saved with it (attnlab's or HF's vocab.txt)."""
    ckpt = check_ckpt(ckpt)
    model = BERT.from_pretrained(ckpt, map_location=device).eval()
    return LoadedBERT(model, tokenizer_from_folder(ckpt, f"--ckpt {ckpt}"))


@torch.no_grad()
def classify(loaded: LoadedBERT, texts: list[str], top_k: int = 3) -> list[list[tuple[str, float]]]:
    """For each text, the fine-tuned classifier's ``top_k`` labels and their probabilities
    (texts longer than the model's positions are cut, as in training)."""
    model, tokenizer = loaded
    if model.config.head != "classifier":
        raise AttnlabError(f"--ckpt: this BERT has a {model.config.head!r} head, not a classifier "
                           "(attnlab train classify makes one; fill-mask uses an MLM head)")
    if not texts or not all(t.strip() for t in texts):
        raise AttnlabError("classify: expected some text, got an empty one")
    limit = model.config.max_positions - 2
    rows = [([tokenizer.cls_id, *ids[:limit], tokenizer.sep_id], 0) for ids in tokenizer.encode_batch(texts)]
    batch = TextBatches(rows, 1, tokenizer.pad_id).collate(rows)
    probs = model(**_to({k: v for k, v in batch.items() if k != "labels"}, model)).logits.float().softmax(-1)
    labels = model.config.labels
    top_p, top_i = probs.topk(min(top_k, len(labels)), dim=-1)
    return [[(labels[i], p) for i, p in zip(ids, ps)] for ps, ids in zip(top_p.tolist(), top_i.tolist())]


def fill_mask(model: BERT, tokenizer: Tokenizer, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """For each ``[MASK]`` in ``text``, the ``top_k`` most likely tokens and probabilities."""
    with torch.no_grad():
        return _fill_mask(model, tokenizer, text, top_k)


@torch.no_grad()
def attentions(loaded: LoadedBERT, inputs: list[str]) -> Explained:
    """Every layer's self-attention on each text of ``inputs`` (default: one example)."""
    model, tokenizer = loaded
    texts = inputs or [DEFAULT_TEXT]
    limit = model.config.max_positions
    rows = [[tokenizer.cls_id, *tokenizer.encode(t), tokenizer.sep_id][:limit] for t in texts]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tokenizer.pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for n, row in enumerate(rows):
        ids[n, : len(row)], mask[n, : len(row)] = torch.tensor(row), 1
    device = next(model.parameters()).device
    model.eval()
    out = model(ids.to(device), attention_mask=mask.to(device), need_weights=True)
    tokens = [[tokenizer.id_to_token(i) for i in row] for row in rows]
    special = {tokenizer.id_to_token(tokenizer.cls_id), tokenizer.id_to_token(tokenizer.sep_id)}
    return Explained("bert", out.attentions, {"tokens": tokens}, {"special": special, "lengths": list(map(len, rows))})


def split_tsv(path: str | Path, seed: int, test_fraction: float = 0.1) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``text<TAB>label`` lines, shuffled by ``seed`` and split into train and test."""
    path = Path(path)
    if not path.is_file():
        raise AttnlabError(f"--data {path}: file not found")
    try:
        text = read_text(path, strict=True)  # UTF-8, no NUL bytes; errors name the line
    except AttnlabError as e:
        raise AttnlabError(f"--data {e}") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise AttnlabError(f"--data {path}:{n}: expected 'text<TAB>label', got {line[:60]!r}")
        rows.append((parts[0].strip(), parts[1].strip()))
    if len({label for _, label in rows}) < 2 or len(rows) < 10:
        raise AttnlabError(f"--data {path}: need at least 10 lines and 2 different labels")
    random.Random(seed).shuffle(rows)
    cut = max(1, round(len(rows) * test_fraction))
    return rows[cut:], rows[:cut]
