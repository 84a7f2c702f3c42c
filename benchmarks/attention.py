"""Attention core benchmarks, attnlab side by side with PyTorch in one process.

1. MultiHeadAttention vs nn.MultiheadAttention, forward+backward, same weights and inputs
   (B=8, L=512, d=256, 8 heads), without and with attention weights, fp32 and bf16 autocast.
2. Causal self-attention forward+backward at training lengths (T <= 512, fp32): attnlab's
   C kernel (kernels/causal_kernel.py) vs PyTorch's flash kernel
   (``F.scaled_dot_product_attention(is_causal=True)``), both on the per-head views of one
   packed q/k/v projection, gradients flowing back to it, as in a GPT block.
3. Causal self-attention forward+backward at long lengths (fp32 and bf16): time and
   peak extra memory of attnlab's scaled_dot_product_attention, with the plain
   (materialised-weights) computation as the reference where it fits.
4. Causal self-attention forward+backward at T = 1024..4096 (B=2, H=4, D=64), attnlab's
   ``scaled_dot_product_attention(causal=True)`` (the C kernel of ``flash_attention.c``)
   against PyTorch's CPU flash kernel (:func:`long_causal`).

Run: python -m benchmarks.attention [--quick] [--threads N] [--only mha,kernel,long,memory] [--cpu-time]

``--cpu-time`` times each run by this thread's CPU time instead of the wall clock (with
``--threads 1``: what the work costs, whatever else a loaded host runs beside it).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from attnlab.attention import MultiHeadAttention, scaled_dot_product_attention
from benchmarks.common import (
    Comparison,
    autocast,
    compare,
    machine_line,
    median_time,
    peak_extra_memory_mib,
    print_table,
)


def mha_comparison(bf16: bool, need_weights: bool, repeats: int, batch: int = 8, length: int = 512, dim: int = 256,
                   heads: int = 8, clock: Callable[[], float] = time.perf_counter) -> Comparison:
    """MultiHeadAttention vs nn.MultiheadAttention (same weights), forward + backward."""
    torch.manual_seed(0)
    peer = nn.MultiheadAttention(dim, heads, batch_first=True)
    ours = MultiHeadAttention.from_torch(peer)
    x = torch.randn(batch, length, dim, requires_grad=True)

    def run_peer():
        with autocast(bf16):
            out, _ = peer(x, x, x, need_weights=need_weights)
        out.float().sum().backward()

    def run_ours():
        with autocast(bf16):
            out = ours(x, need_weights=need_weights).output
        out.float().sum().backward()

    weights = " with weights" if need_weights else ""
    return compare(f"MHA fwd+bwd {'bf16' if bf16 else 'fp32'}{weights}", run_peer, run_ours, repeats=repeats,
                   clock=clock)


def long_causal(length: int, bf16: bool, repeats: int, batch: int = 2, heads: int = 4, dim: int = 64,
                clock: Callable[[], float] = time.perf_counter) -> Comparison:
    """Causal self-attention forward + backward: PyTorch's flash kernel vs attnlab's path."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(batch, heads, length, dim, generator=g).to(dtype).requires_grad_() for _ in range(3))
    grad = torch.randn(batch, heads, length, dim, generator=g).to(dtype)

    def flash():
        F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(grad)

    def ours():
        scaled_dot_product_attention(q, k, v, causal=True).output.backward(grad)

    return compare(f"causal attention fwd+bwd T={length} {'bf16' if bf16 else 'fp32'}", flash, ours,
                   repeats=repeats, warmup=1, clock=clock)


def mha_rows(batch: int, length: int, dim: int, heads: int, repeats: int, clock: Callable[[], float]) -> list[list[object]]:
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        for need_weights in (False, True):
            result = mha_comparison(dtype == torch.bfloat16, need_weights, repeats, batch, length, dim, heads, clock)
            rows.append([
                str(dtype).replace("torch.", ""), "yes" if need_weights else "no",
                result.peer_s * 1e3, result.ours_s * 1e3, f"{result.ratio:.2f}x",
            ])
    return rows


def kernel_rows(shapes: list[tuple[int, int, int, int]], repeats: int) -> list[list[object]]:
    rows = []
    for b, h, t, d in shapes:
        packed = torch.randn(b, t, 3 * h * d, requires_grad=True)
        grad = torch.randn(b, t, h * d)

        def heads():
            return [x.view(b, t, h, d).transpose(1, 2) for x in packed.split(h * d, dim=-1)]  # (B, H, T, D)

        def backward(out):
            out.transpose(1, 2).reshape(b, t, h * d).backward(grad)

        def flash():
            backward(F.scaled_dot_product_attention(*heads(), is_causal=True))

        def forward_only(attention):
            with torch.no_grad():
                attention()

        def ours():
            backward(scaled_dot_product_attention(*heads(), causal=True).output)

        train = compare("causal training", flash, ours, repeats=repeats)
        infer = compare(
            "causal inference",
            lambda: forward_only(lambda: F.scaled_dot_product_attention(*heads(), is_causal=True)),
            lambda: forward_only(lambda: scaled_dot_product_attention(*heads(), causal=True)),
            repeats=repeats,
        )
        rows.append([f"{b} x {h} x {t} x {d}", train.peer_s * 1e3, train.ours_s * 1e3, f"{train.ratio:.2f}x",
                     infer.peer_s * 1e3, infer.ours_s * 1e3, f"{infer.ratio:.2f}x"])
    return rows


def causal_rows(lengths: list[int], heads: int, head_dim: int) -> list[list[object]]:
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        for length in lengths:
            q, k, v = (torch.randn(1, heads, length, head_dim, dtype=dtype, requires_grad=True) for _ in range(3))

            def fused():
                scaled_dot_product_attention(q, k, v, causal=True).output.sum().backward()

            def plain():
                scores = (q @ k.transpose(-2, -1)) * head_dim**-0.5
                mask = torch.ones(length, length, dtype=torch.bool).tril()
                (torch.softmax(scores.masked_fill(~mask, float("-inf")), -1) @ v).sum().backward()

            seconds = median_time(fused, repeats=3, warmup=1)
            memory = peak_extra_memory_mib(fused)
            plain_memory = peak_extra_memory_mib(plain) if length <= 8192 else float("nan")
            rows.append([str(dtype).replace("torch.", ""), length, seconds, memory, plain_memory])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and shorter sequences")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--only", default="mha,kernel,long,memory", help="tables to print (default: all four)")
    parser.add_argument("--cpu-time", action="store_true", help="time by this thread's CPU time, not the wall clock")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tables = set(args.only.split(","))
    clock, unit = (time.thread_time, "median CPU ms") if args.cpu_time else (time.perf_counter, "median ms")
    print(f"machine: {machine_line()}\n")
    if "mha" in tables:
        print_table(
            f"MultiHeadAttention vs nn.MultiheadAttention, forward+backward, B=8 L=512 d=256 H=8 ({unit})",
            ["dtype", "weights", "nn.MultiheadAttention", "attnlab", "speed-up"],
            mha_rows(8, 512, 256, 8, repeats=3 if args.quick else 9, clock=clock),
        )
    if "kernel" in tables:
        shapes = [(8, 4, 128, 64)] if args.quick else [(8, 4, 128, 64), (16, 4, 256, 32), (4, 4, 512, 64)]
        print_table(
            f"Causal self-attention at training lengths, fp32, {torch.get_num_threads()} threads (median ms)",
            ["B x H x T x D", "flash fwd+bwd", "attnlab fwd+bwd", "speed-up", "flash fwd", "attnlab fwd", "speed-up"],
            kernel_rows(shapes, repeats=5 if args.quick else 15),
        )
    if "long" in tables:
        rows = []
        for length in (1024, 2048, 4096):
            for bf16 in (False, True):
                c = long_causal(length, bf16, repeats=3 if args.quick else 5, clock=clock)
                rows.append([c.name, c.peer_s * 1e3, c.ours_s * 1e3, f"{c.ratio:.2f}x"])
        print_table(f"Causal self-attention at long T, B=2 H=4 D=64 ({unit})",
                    ["case", "PyTorch flash", "attnlab", "speed-up"], rows)
    if "memory" in tables:
        lengths = [2048, 4096] if args.quick else [8192, 16384, 32768]
        print_table(
            "Causal self-attention forward+backward, B=1 H=4 Dh=64",
            ["dtype", "L", "attnlab time (s)", "attnlab peak extra MiB", "plain path peak extra MiB"],
            causal_rows(lengths, heads=4, head_dim=64),
        )


if __name__ == "__main__":
    main()
