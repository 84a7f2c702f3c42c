"""A tiny tagging task for the distributed tests: variable-length, padded sequences, so a
rank's share of the loss is its share of the *tokens*, not of the rows.

Run as a script under torchrun (``worker.py``) and imported by the tests (one process).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from attnlab.io import read_safetensors
from attnlab.training import TrainConfig, Trainer

VOCAB, DIM, HIDDEN, MAX_LEN = 13, 8, 24, 12
IGNORE = -100


class Tagger(nn.Module):
    """Embedding -> LayerNorm -> MLP (with dropout) -> a tag per token; loss per token."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(DIM, HIDDEN), nn.ReLU(), nn.Dropout(dropout),
                                                   nn.Linear(HIDDEN, DIM)) for _ in range(2)])
        self.embed = nn.Embedding(VOCAB, DIM)
        self.norm = nn.LayerNorm(DIM)
        self.out = nn.Linear(DIM, VOCAB)

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.embed(tokens))  # (B, L, D)
        for block in self.blocks:
            h = h + block(h)
        logits = self.out(h)  # (B, L, V)
        return nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)


class TagData:
    """Batch ``step``: ``batch_size`` sequences of 1..MAX_LEN tokens, padded; a function of the step."""

    def __init__(self, batch_size: int, signal_at: int | None = None, signum: int = signal.SIGTERM, slow: float = 0.0):
        self.batch_size, self.signal_at, self.signum, self.slow = batch_size, signal_at, signum, slow

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        time.sleep(self.slow)  # room for the fault tests to act mid-run
        if step == self.signal_at and int(os.environ.get("RANK", "0")) == 0:
            os.kill(os.getpid(), self.signum)
        rng = np.random.default_rng([7, step])
        lengths = rng.integers(1, MAX_LEN + 1, size=self.batch_size)
        width = int(lengths.max())
        tokens = torch.from_numpy(rng.integers(1, VOCAB, size=(self.batch_size, width)))
        labels = (tokens * 3 + 1) % VOCAB
        pad = torch.arange(width)[None, :] >= torch.from_numpy(lengths)[:, None]
        return {"tokens": tokens.masked_fill(pad, 0), "labels": labels.masked_fill(pad, IGNORE)}


def tagged(batch: dict) -> int:
    """The loss's units: labelled tokens."""
    return int((batch["labels"] != IGNORE).sum())


def loss_fn(model, batch):
    return model(**batch)


def evaluate(model: Tagger) -> dict[str, float]:
    """Uses parameters outside the blocks directly (FSDP must have gathered them)."""
    batch = TagData(4).batch(10**6)
    return {"weight_sum": float(model.out.weight.sum()), "loss": float(model(**batch))}


def train(out: str, *, steps: int = 24, batch_size: int = 12, resume: bool = False, dropout: float = 0.0,
          signal_at: int | None = None, slow: float = 0.0, save_extra=None, **config) -> object:
    torch.manual_seed(0)
    model = Tagger(dropout)
    settings = dict(out_dir=out, steps=steps, lr=1e-2, warmup_steps=2, weight_decay=0.1, progress=False)
    trainer = Trainer(model, TagData(batch_size, signal_at, slow=slow), TrainConfig(**{**settings, **config}),
                      loss_fn=loss_fn, loss_units=tagged, save_extra=save_extra, evaluate=evaluate)
    return trainer.fit(resume=resume)


def weights(out: str | Path) -> dict[str, torch.Tensor]:
    return read_safetensors(Path(out) / "model.safetensors")


def write_result(path: str | Path, **values) -> None:
    Path(path).write_text(json.dumps(values))
