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
   other memory budgets vs the default (median of interleaved runs; ratio > 1 = the
   default chunked path is faster).

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
CHECKPOINT_MAX_LENGTH = 2048  # longer checkpoint runs take minutes each


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
    step(variant, make_inputs(16), budget)()  # load kernels and thread pools before measuring
    inputs = make_inputs(length)
    start = time.perf_counter()
    peak = peak_extra_memory_mib(step(variant, inputs, budget))
    return {"peak_mib": peak, "seconds": time.perf_counter() - start}


def memory_rows(lengths: list[int], threads: int) -> list[list[object]]:
    rows = []
    for length in lengths:
        for variant in VARIANTS:
            full = BATCH * length * length * HIDDEN * 4
            if variant == "textbook" and 3 * full > TEXTBOOK_LIMIT:
                rows.append([length, variant, f"not run (needs > {3 * full / 2**30:.0f} GiB)", "-"])
                continue
            if variant == "checkpoint" and length > CHECKPOINT_MAX_LENGTH:
                rows.append([length, variant, "not run (minutes per run)", "-"])
                continue
            command = [sys.executable, "-m", "benchmarks.additive_memory", "--threads", str(threads), "--case", variant, str(length)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                rows.append([length, variant, f"failed (exit {done.returncode})", "-"])
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append([length, variant, f"{result['peak_mib']:.0f}", f"{result['seconds']:.2f}"])
    return rows


def timing_row(length: int, label: str, peer, ours, repeats: int) -> list[object]:
    result = compare(label, peer, ours, repeats)
    threads = torch.get_num_threads()
    return [length, threads, label, f"{result.peer_s:.3f}", f"{result.ours_s:.3f}", f"{result.ratio:.2f}x"]


def timing_rows(lengths: list[int], budgets: list[int], repeats: int) -> list[list[object]]:
    default = f"chunked {DEFAULT_MEMORY_BUDGET / MIB:g} MiB"
    rows = []
    for length in lengths:
        inputs = make_inputs(length)
        ours = step("chunked", inputs, DEFAULT_MEMORY_BUDGET)
        rows.append(timing_row(length, f"textbook vs {default}", step("textbook", inputs, 0), ours, repeats))
    inputs = make_inputs(lengths[0])
    ours = step("chunked", inputs, DEFAULT_MEMORY_BUDGET)
    rows.append(timing_row(lengths[0], f"checkpoint vs {default}", step("checkpoint", inputs, DEFAULT_MEMORY_BUDGET), ours, repeats))
    threads = torch.get_num_threads()
    for sweep_threads in sorted({threads, 2}):  # the budget's best size depends on the threads
        torch.set_num_threads(sweep_threads)
        for budget in budgets:
            label = f"chunked {budget / MIB:g} MiB vs {default}"
            rows.append(timing_row(lengths[0], label, step("chunked", inputs, budget), ours, repeats))
    torch.set_num_threads(threads)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller lengths, fewer repeats")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch threads; 1 by default because on a shared machine every op of a multi-threaded "
        "run waits for its slowest thread, which swamps the comparison",
    )
    parser.add_argument("--case", nargs=2, metavar=("VARIANT", "LENGTH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.case:
        print(json.dumps(run_case(args.case[0], int(args.case[1]), DEFAULT_MEMORY_BUDGET)))
        return 0
    print(machine_line() + "\n")
    print_table(
        f"Additive score forward+backward, peak extra memory (B={BATCH}, H={HIDDEN}, fp32)",
        ["L", "variant", "peak extra MiB", "seconds (1 run)"],
        memory_rows([256, 512] if args.quick else [1024, 2048, 4096], args.threads),
    )
    print_table(
        "Additive score forward+backward, time side by side (median; ratio > 1 = the second is faster)",
        ["L", "threads", "comparison", "first s", "second s", "ratio"],
        timing_rows([128, 256] if args.quick else [512, 1024], [MIB, 16 * MIB, 64 * MIB], repeats=3 if args.quick else 5),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
