"""Linear maps, fp32 on the CPU: attnlab's ``linear`` (oneDNN for x W^T and dy W, sgemm for
dy^T x; layers/linear.py) side by side with ``F.linear`` (MKL's sgemm through addmm) in
one process, same inputs and weights, timings interleaved (ratio > 1: attnlab faster).

Shapes: N rows (batch x length) by in -> out, the projections of the GPT benchmark's
4 x 256 model (q/k/v packed, output, fc1, fc2 at B=8, T=128) and of a BERT-base layer.

attnlab takes oneDNN on the CPU vendors where it measured faster (``ONEDNN_VENDORS``);
this benchmark measures oneDNN's path on any CPU, to decide that list.

Run: python -m benchmarks.linear [--quick] [--threads N]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import attnlab.kernels.linear as linear_module
from attnlab.kernels.linear import cpu_vendor, linear, onednn_applies
from benchmarks.common import compare, machine_line, print_table

SHAPES = [  # (rows, in, out)
    (1024, 256, 768), (1024, 256, 256), (1024, 256, 1024), (1024, 1024, 256),
    (512, 768, 3072), (512, 3072, 768),
]


def rows_for(shapes: list[tuple[int, int, int]], repeats: int) -> list[list[object]]:
    rows = []
    for n, d_in, d_out in shapes:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, d_in, generator=g, requires_grad=True)
        weight = torch.randn(d_out, d_in, generator=g, requires_grad=True)
        bias = torch.randn(d_out, generator=g, requires_grad=True)
        grad = torch.randn(n, d_out, generator=g)
        assert onednn_applies(x, weight), "oneDNN's product is not available here: nothing to compare"

        def train(fn):
            def run():
                x.grad = weight.grad = bias.grad = None  # as zero_grad(set_to_none=True) leaves them
                fn(x, weight, bias).backward(grad)
            return run

        def infer(fn):
            def run():
                with torch.no_grad():
                    fn(x, weight, bias)
            return run

        forward = compare("forward", infer(F.linear), infer(linear), repeats=repeats)
        both = compare("forward + backward", train(F.linear), train(linear), repeats=repeats)
        rows.append([f"{n} x {d_in} -> {d_out}", forward.peer_s * 1e3, forward.ours_s * 1e3, f"{forward.ratio:.2f}x",
                     both.peer_s * 1e3, both.ours_s * 1e3, f"{both.ratio:.2f}x"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the GPT shapes only, fewer repeats")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=31)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes, repeats = (SHAPES[:4], 7) if args.quick else (SHAPES, args.repeats)
    vendor = cpu_vendor() or "unknown"
    default = "oneDNN" if vendor in linear_module.ONEDNN_VENDORS else "F.linear (sgemm)"
    print(f"machine: {machine_line()}, CPU vendor {vendor}: attnlab's default here is {default}; "
          "oneDNN is measured on this CPU whatever the default\n")
    linear_module.ONEDNN_VENDORS = (cpu_vendor(),)
    print_table(
        "fp32 linear map, ms (medians of interleaved runs)",
        ["N x in -> out", "F.linear forward", "attnlab forward", "speed-up",
         "F.linear fwd + bwd", "attnlab fwd + bwd", "speed-up"],
        rows_for(shapes, repeats),
    )


if __name__ == "__main__":
    main()
