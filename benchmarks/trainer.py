"""The Trainer's overhead, side by side with a hand-written PyTorch loop in one process.

The peer is the loop people write by hand (minGPT/nanoGPT style): AdamW, ``LambdaLR``
warm-up + cosine, ``clip_grad_norm_``, optional bf16 autocast, ``loss.item()`` per step,
and one ``torch.save`` of model + optimizer at the end. attnlab's ``Trainer.fit`` does
the same updates with the same schedule (the losses are checked to be identical) plus what the peer lacks: RNG
capture per step for bit-exact resume, SIGINT deferral around the update, and an atomic
safetensors checkpoint folder. Both train the same 2-layer Transformer encoder LM
(``nn.TransformerEncoderLayer``, d=128, 4 heads, dropout 0.1) from the same initial
weights on the same batches. A second row times one checkpoint save alone.

Run: python -m benchmarks.trainer [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from attnlab.training import TrainConfig, Trainer, make_schedule, set_seed
from attnlab.training.checkpoint import save_checkpoint
from attnlab.training.rng import capture_rng
from benchmarks.common import compare, machine_line, print_table

VOCAB, DIM, HEADS, LAYERS, SEQ, BATCH = 512, 128, 4, 2, 64, 16


@dataclass
class LMOutput:
    loss: torch.Tensor


class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        layer = nn.TransformerEncoderLayer(DIM, HEADS, 4 * DIM, dropout=0.1, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
        self.head = nn.Linear(DIM, VOCAB)

    def forward(self, ids: torch.Tensor, targets: torch.Tensor) -> LMOutput:
        mask = nn.Transformer.generate_square_subsequent_mask(ids.shape[1])
        h = self.blocks(self.embed(ids), mask=mask, is_causal=True)  # (B, L, D)
        logits = self.head(h)  # (B, L, V)
        return LMOutput(nn.functional.cross_entropy(logits.flatten(0, 1).float(), targets.flatten()))


class Batches:
    def __init__(self):
        self.tokens = torch.randint(0, VOCAB, (64, BATCH, SEQ + 1), generator=torch.Generator().manual_seed(0))

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        t = self.tokens[step % len(self.tokens)]  # (B, L + 1)
        return {"ids": t[:, :-1], "targets": t[:, 1:]}


def hand_loop(model: nn.Module, data: Batches, config: TrainConfig, path: Path) -> list[float]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=config.betas, eps=config.eps,
                                  weight_decay=config.weight_decay)
    schedule = make_schedule(config.schedule, config.steps, config.warmup_steps)  # the same multipliers
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    set_seed(config.seed)
    model.train()
    losses = []
    for step in range(config.steps):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            loss = model(**data.batch(step)).loss
        losses.append(loss.item())
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, path)
    return losses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: a shared, loaded CPU makes 2 spinning threads erratic)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps, repeats = (8, 3) if args.quick else (30, 5)
    torch.manual_seed(0)
    initial, data = TinyLM(), Batches()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for bf16 in (False, True):
            config = TrainConfig(out_dir=f"{tmp}/run", steps=steps, lr=1e-3, warmup_steps=steps // 4,
                                 bf16=bf16, progress=False)
            peer_losses, our_losses = [], []

            def peer(config=config, out=peer_losses):
                out[:] = hand_loop(copy.deepcopy(initial), data, config, Path(tmp) / "peer.pt")

            def ours(config=config, out=our_losses):
                out[:] = Trainer(copy.deepcopy(initial), data, config).fit().losses

            result = compare(f"{steps} steps {'bf16' if bf16 else 'fp32'}", peer, ours, repeats=repeats, warmup=1)
            assert peer_losses == our_losses, "the Trainer and the hand loop must make the same updates"
            rows.append([result.name, result.peer_s / steps * 1e3, result.ours_s / steps * 1e3, result.ratio])

        trainer = Trainer(copy.deepcopy(initial), data, config)
        trainer.fit()
        state = {"optimizer": trainer.optimizer.state_dict(), "scheduler": trainer.scheduler.state_dict()}
        rng = capture_rng()
        save = compare(
            "one checkpoint save",
            lambda: torch.save({"model": trainer.model.state_dict(), **state}, Path(tmp) / "peer.pt"),
            lambda: save_checkpoint(Path(tmp) / "ckpt", trainer.model, state, {"step": steps}, rng),
            repeats=repeats,
        )
        rows.append([save.name, save.peer_s * 1e3, save.ours_s * 1e3, save.ratio])
    print(machine_line())
    print_table(
        f"Trainer vs hand-written loop (TinyLM d={DIM}, {LAYERS} layers, batch {BATCH}x{SEQ}; "
        "steps: ms per step incl. the final checkpoint; ratio = peer / ours, > 1 means attnlab is faster)",
        ["case", "hand loop (ms)", "attnlab Trainer (ms)", "ratio"],
        rows,
    )


if __name__ == "__main__":
    main()
