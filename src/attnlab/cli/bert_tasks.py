"""The work behind ``attnlab train mlm`` and ``attnlab train classify``.

``pretrain``: WordPiece on the training sentences, a BERT with MLM + NSP heads, the
Trainer on :class:`~attnlab.data.mlm.MLMBatches`; validation reports MLM accuracy (on
the chosen 15%) and NSP accuracy on held-out documents. ``finetune``: the pre-trained
encoder with a fresh classifier head; test accuracy against the majority baseline.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import torch
from torch import Tensor

from attnlab.data.mlm import MLMBatches, pad_batch, read_documents, source_documents, source_lines
from attnlab.data.stdlib_corpus import is_validation, stdlib_files, stdlib_root
from attnlab.data.tokenizer import Tokenizer
from attnlab.data.wordpiece import WordPieceTokenizer
from attnlab.errors import AttnlabError
from attnlab.models.bert import BERT, bert_config
from attnlab.training import EpochShuffler, Trainer, TrainResult

VALIDATION_FRACTION = 0.1
EVAL_BATCHES = 4


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


def pretrain(args, config) -> tuple[TrainResult, str]:
    train_docs, valid_docs = mlm_documents(args.data, args.max_files)
    if args.resume:
        tokenizer = Tokenizer.load(args.out)
    else:
        tokenizer = WordPieceTokenizer.train((s for d in train_docs for s in d), vocab_size=args.vocab_size)
    model_config = bert_config(args.preset, vocab_size=tokenizer.vocab_size, head="pretraining",
                               max_positions=max(args.max_len, 64), pad_token_id=tokenizer.pad_id)
    torch.manual_seed(args.seed)
    model = BERT(model_config)
    data = MLMBatches(train_docs, tokenizer, args.batch_size, args.max_len, seed=args.seed)
    held_out = MLMBatches(valid_docs, tokenizer, 64, args.max_len, seed=args.seed + 1)
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

    result = Trainer(model, data, config, evaluate=evaluate, save_extra=tokenizer.save).fit(resume=args.resume)
    m = result.metrics
    summary = (f"validation: MLM accuracy {m.get('mlm_accuracy', 0):.3f} | NSP accuracy {m.get('nsp_accuracy', 0):.3f} "
               f"({sum(map(len, train_docs))} training sentences, vocab {tokenizer.vocab_size})")
    return result, summary


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


def finetune(args, config) -> tuple[TrainResult, str]:
    from attnlab.cli.bert import load_bert, split_tsv

    pretrained, tokenizer = load_bert(args.ckpt)
    train, test = split_tsv(args.data, args.seed) if args.data else code_or_prose(args.max_examples, args.seed)
    labels = sorted({label for _, label in train + test})
    torch.manual_seed(args.seed)
    model = pretrained.with_head("classifier", labels)
    limit = min(args.max_len, model.config.max_positions) - 2

    def encode(rows: list[tuple[str, str]]) -> list[tuple[list[int], int]]:
        ids = tokenizer.encode_batch([text for text, _ in rows])
        return [([tokenizer.cls_id, *x[:limit], tokenizer.sep_id], labels.index(y)) for x, (_, y) in zip(ids, rows)]

    data = TextBatches(encode(train), args.batch_size, tokenizer.pad_id, seed=args.seed)
    test_rows = encode(test)

    def evaluate(m: BERT) -> dict[str, float]:
        hits = 0
        for start in range(0, len(test_rows), 128):
            batch = data.collate(test_rows[start : start + 128])
            hits += (m(**_to(batch, m)).logits.argmax(-1).cpu() == batch["labels"]).sum().item()
        return {"test_accuracy": hits / len(test_rows)}

    result = Trainer(model, data, config, evaluate=evaluate, save_extra=tokenizer.save).fit(resume=args.resume)
    majority = Counter(label for _, label in test).most_common(1)[0][1] / len(test)
    summary = (f"test accuracy {result.metrics.get('test_accuracy', 0):.3f} on {len(test)} examples "
               f"(majority class {majority:.3f}; labels {labels})")
    return result, summary
