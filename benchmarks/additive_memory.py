"""Memory-bounded additive (Bahdanau) scores against the textbook materialised form.

Forward + backward of e_ij = v^T tanh(q'_i + k'_j) (the part of additive attention that
grows as Lq * Lk * H), fp32, B=2, H=128, L = Lq = Lk:

- textbook:   tanh of the whole (B, Lq, Lk, H) tensor, plain autograd (what a direct
              port of TensorFlow Addons' BahdanauAttention or the usual tutorials does);
- chunked:    attnlab.attention.scores.additive_score, blocks of queries sized from a
              memory budget, a custom autograd Function recomputing each block in backward;
- checkpoint: the same blocks through torch.utils.checkpoint (the alternative considered).

1. Peak extra memory and time of one forward+backward, each case in a fresh subprocess
   (VmHWM above the resident memory before the call); textbook only where it fits ~8 GiB.
2. Time side by side in one process: textbook vs chunked, checkpoint vs chunked, and
   chunked under several memory budgets (median of interleaved runs; ratio > 1 = attnlab faster).

Run: python -m benchmarks.additive_memory [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch
from torch.utils.checkpoint import checkpoint

from attnlab.attention.scores import (
    DEFAULT_MEMORY_BUDGET,
    additive_score,
    materialised_additive_score,
    query_chunk_size,
)
from benchmarks.common import compare, machine_line, peak_extra_memory_mib, print_table

BATCH, HIDDEN, MIB = 2, 128, 2**20
TEXTBOOK_LIMIT = 8 * 2**30  # bytes; textbook backward holds ~3 full (B, L, L, H) fp32 tensors


def checkpointed_additive_score(q, k, v, budget: int = DEFAULT_MEMORY_BUDGET):
    """Blocks of queries through torch.utils.checkpoint, sized like additive_score's chunks."""
    chunk = query_chunk_size(q, k, budget)
    blocks = [
        checkpoint(materialised_additive_score, q[:, s : s + chunk], k, v, use_reentrant=False)
        for s in range(0, q.shape[1], chunk)
    ]
    return torch.cat(blocks, dim=1)  # (B, Lq, Lk)


VARIANTS = {
    "textbook": lambda q, k, v, budget: materialised_additive_score(q, k, v),
    "chunked": lambda q, k, v, budget: additive_score(q, k, v, memory_budget=budget),
    "checkpoint": checkpointed_additive_score,
}


def make_inputs(length: int):
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(*s, generator=g).requires_grad_() for s in [(BATCH, length, HIDDEN)] * 2 + [(HIDDEN,)])


def step(variant: str, inputs, budget: int):
    def run():
        for t in inputs:
            t.grad = None
        scores = VARIANTS[variant](*inputs, budget)
        scores.backward(torch.ones_like(scores) / scores.numel())

    return run


def run_case(variant: str, length: int, budget: int) -> dict:
    """One forward+backward in this (fresh) process: peak extra MiB and seconds."""
    inputs = make_inputs(length)
    start = time.perf_counter()
    peak = peak_extra_memory_mib(step(variant, inputs, budget))
    return {"peak_mib": peak, "seconds": time.perf_counter() - start}


def memory_rows(lengths: list[int]) -> list[list[object]]:
    rows = []
    for length in lengths:
        for variant in VARIANTS:
            full = BATCH * length * length * HIDDEN * 4
            if variant == "textbook" and 3 * full > TEXTBOOK_LIMIT:
                rows.append([length, variant, f"not run (needs > {3 * full / 2**30:.0f} GiB)", "-"])
                continue
            command = [sys.executable, "-m", "benchmarks.additive_memory", "--case", variant, str(length)]
            result = json.loads(subprocess.check_output(command).decode().strip().splitlines()[-1])
            rows.append([length, variant, f"{result['peak_mib']:.0f}", f"{result['seconds']:.2f}"])
    return rows


def timing_rows(length: int, budgets: list[int], repeats: int) -> list[list[object]]:
    inputs = make_inputs(length)
    rows = []
    for peer in ("textbook", "checkpoint"):
        result = compare(peer, step(peer, inputs, DEFAULT_MEMORY_BUDGET), step("chunked", inputs, DEFAULT_MEMORY_BUDGET), repeats)
        rows.append([length, f"{peer} vs chunked ({DEFAULT_MEMORY_BUDGET // MIB} MiB)", f"{result.peer_s:.3f}", f"{result.ours_s:.3f}", f"{result.ratio:.2f}x"])
    for budget in budgets:
        result = compare("budget", step("chunked", inputs, DEFAULT_MEMORY_BUDGET), step("chunked", inputs, budget), repeats)
        rows.append([length, f"chunked {DEFAULT_MEMORY_BUDGET // MIB} MiB vs {budget // MIB} MiB", f"{result.peer_s:.3f}", f"{result.ours_s:.3f}", f"{result.ratio:.2f}x"])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller lengths, fewer repeats")
    parser.add_argument("--case", nargs=2, metavar=("VARIANT", "LENGTH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case[0], int(args.case[1]), DEFAULT_MEMORY_BUDGET)))
        return 0
    print(machine_line() + "\n")
    lengths = [256, 512] if args.quick else [1024, 2048, 4096]
    print_table(
        f"Additive score forward+backward, peak extra memory (B={BATCH}, H={HIDDEN}, fp32)",
        ["L", "variant", "peak extra MiB", "seconds (1 run)"],
        memory_rows(lengths),
    )
    budgets = [16 * MIB, 256 * MIB]
    print_table(
        "Additive score forward+backward, time side by side (median; ratio > 1 = chunked faster)",
        ["L", "comparison", "peer s", "ours s", "ratio"],
        timing_rows(lengths[0], budgets, repeats=2 if args.quick else 5),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
