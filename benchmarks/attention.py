"""Attention core benchmarks, attnlab side by side with PyTorch in one process.

1. MultiHeadAttention vs nn.MultiheadAttention, forward+backward, same weights and inputs
   (B=8, L=512, d=256, 8 heads), without and with attention weights, fp32 and bf16 autocast.
2. Causal self-attention forward+backward at long lengths (fp32 and bf16): time and
   peak extra memory of attnlab's scaled_dot_product_attention, with the plain
   (materialised-weights) computation as the reference where it fits.

Run: python -m benchmarks.attention [--quick]
"""

from __future__ import annotations

import argparse
import contextlib

import torch
from torch import nn

from attnlab.attention import MultiHeadAttention, scaled_dot_product_attention
from benchmarks.common import compare, machine_line, median_time, peak_extra_memory_mib, print_table


def mha_rows(batch: int, length: int, dim: int, heads: int, repeats: int) -> list[list[object]]:
    torch.manual_seed(0)
    peer = nn.MultiheadAttention(dim, heads, batch_first=True)
    ours = MultiHeadAttention.from_torch(peer)
    x = torch.randn(batch, length, dim, requires_grad=True)
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == torch.bfloat16 else contextlib.nullcontext()
        for need_weights in (False, True):

            def run_peer():
                with autocast:
                    out, _ = peer(x, x, x, need_weights=need_weights)
                out.float().sum().backward()

            def run_ours():
                with autocast:
                    out = ours(x, need_weights=need_weights).output
                out.float().sum().backward()

            result = compare("mha", run_peer, run_ours, repeats=repeats)
            rows.append([
                str(dtype).replace("torch.", ""), "yes" if need_weights else "no",
                result.peer_s * 1e3, result.ours_s * 1e3, f"{result.ratio:.2f}x",
            ])
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
    args = parser.parse_args()
    print(f"machine: {machine_line()}\n")
    print_table(
        "MultiHeadAttention vs nn.MultiheadAttention, forward+backward, B=8 L=512 d=256 H=8 (median ms)",
        ["dtype", "weights", "nn.MultiheadAttention", "attnlab", "speed-up"],
        mha_rows(8, 512, 256, 8, repeats=3 if args.quick else 9),
    )
    lengths = [2048, 4096] if args.quick else [8192, 16384, 32768]
    print_table(
        "Causal self-attention forward+backward, B=1 H=4 Dh=64",
        ["dtype", "L", "attnlab time (s)", "attnlab peak extra MiB", "plain path peak extra MiB"],
        causal_rows(lengths, heads=4, head_dim=64),
    )


if __name__ == "__main__":
    main()
