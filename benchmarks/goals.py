"""Every ratio of the performance goals in one table (issue 28), side by side in one process.

Each workload is the function of its own benchmark script, called here in turn; attnlab
and the peer hold the same weights, take the same inputs and do the same work; timings
are interleaved medians (:func:`benchmarks.common.compare`); ratio = peer time / attnlab
time (> 1: attnlab faster). The host's load average is printed beside every row: on a
shared host a ratio is only what that load allowed.

    python -m benchmarks.goals [--quick] [--threads N] [--only bert,vit,...] [--beside]

``--beside`` runs a second process (one thread of matrix products) beside the whole
table: the loaded case of the goals. Workloads: bert, vit, translator, gpt, decode, mha,
causal, gat.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import torch

from benchmarks import attention, encoders, gpt, graph, translate
from benchmarks.common import Comparison, load_average, machine_line

GOALS = {  # workload -> (peer, goal ratio)
    "BERT train step": ("HF BertForMaskedLM, sdpa", 1.3),
    "ViT train step": ("HF ViTForImageClassification, sdpa", 1.3),
    "translator train step": ("nn.Transformer + embeddings + tied output", 1.3),
    "GPT train step": ("HF GPT2LMHeadModel", 1.5),
    "GPT decode greedy, batch 1": ("HF generate", 15.0),
    "GPT decode greedy, batch 8": ("HF generate", 5.0),
    "GPT decode beam 4, batch 1": ("HF generate(num_beams=4)", 5.0),
    "MHA fwd+bwd": ("nn.MultiheadAttention", 1.3),
    "MHA fwd+bwd with weights": ("nn.MultiheadAttention", 2.0),
    "causal attention fwd+bwd": ("PyTorch CPU flash (F.sdpa)", 1.5),
    "GATConv fwd+bwd": ("PyG GATConv", 3.0),
}
SECOND_PROCESS = "import torch\ntorch.set_num_threads(1)\na = torch.randn(512, 512)\nwhile True:\n    a @ a\n"


class Table:
    def __init__(self):
        self.rows: list[list[str]] = []

    def add(self, workload: str, precision: str, result: Comparison, note: str = "") -> None:
        peer, goal = GOALS[workload]
        met = "met" if result.ratio >= goal else f"short by {goal - result.ratio:.2f}x"
        self.rows.append([workload, peer, precision, f"{result.peer_s * 1e3:.4g}", f"{result.ours_s * 1e3:.4g}",
                          f"**{result.ratio:.2f}x**", f"≥ {goal:g}x", met, f"{load_average():.1f}", note])
        print("| " + " | ".join(self.rows[-1]) + " |", flush=True)


def run(names: set[str], repeats: int, decode_repeats: int, new_tokens: int, table: Table) -> None:
    precisions = (("fp32", False), ("bf16", True))
    if "bert" in names:
        for label, bf16 in precisions:
            table.add("BERT train step", label, encoders.bert_train(bf16, repeats), "B16 L128, h256 x 4, V 4000")
    if "vit" in names:
        for label, bf16 in precisions:
            table.add("ViT train step", label, encoders.vit_train(bf16, repeats), "B32, 32x32 / 4, h256 x 4")
    if "translator" in names:
        for label, bf16 in precisions:
            table.add("translator train step", label, translate.translator_train(bf16, repeats), "B64, S=T=24 padded")
    if "gpt" in names or "decode" in names:
        hf, ours = gpt.make_pair("char-base", None, "cpu")
    if "gpt" in names:
        ids = torch.randint(0, ours.config.vocab_size, (8, 128), generator=torch.Generator().manual_seed(0))
        flops = gpt.step_flops(ours, 8, 128)
        for label, bf16 in precisions:
            peak = gpt.matmul_peak(torch.bfloat16 if bf16 else torch.float32, "cpu", 2048)
            r = gpt.train_comparison(hf, ours, ids, bf16, repeats)
            mfu = f"MFU {flops / r.ours_s / peak:.0%} of a measured {peak / 1e12:.3g} TFLOP/s (HF {flops / r.peer_s / peak:.0%})"
            if load_average() > os.cpu_count():  # the peak was measured on a shared core
                mfu += " (host loaded: MFU not meaningful)"
            table.add("GPT train step", label, r, "4x256, B8 T128; " + mfu)
    if "decode" in names:
        traffic = gpt.weight_bytes(ours)
        host = gpt.read_bandwidth(traffic)  # the ceiling of batch-1 weight reads on this host
        for mode, rows, r in gpt.decode_comparisons(hf, ours, "cpu", new_tokens, decode_repeats, pytorch_path=False):
            workload = "GPT decode " + mode.removesuffix(", C step")
            note = f"{new_tokens} tokens, {rows * new_tokens / r.ours_s:.0f} tok/s"
            if rows == 1 and "greedy" in mode:
                note += f", weight reads {traffic * new_tokens / r.ours_s / 1e9:.3g} GB/s of the host's {host / 1e9:.3g}"
            table.add(workload, "fp32", r, note)
        hf.train(), ours.train()
    if "mha" in names:
        for label, bf16 in precisions:
            for need_weights in (False, True):
                workload = "MHA fwd+bwd" + (" with weights" if need_weights else "")
                table.add(workload, label, attention.mha_comparison(bf16, need_weights, repeats), "B8 L512 d256 h8")
    if "causal" in names:
        for length in (1024, 2048, 4096):
            for label, bf16 in precisions:
                table.add("causal attention fwd+bwd", label, attention.long_causal(length, bf16, max(3, repeats // 2)),
                          f"T={length}, B2 H4 D64")
    if "gat" in names:
        table.add("GATConv fwd+bwd", "fp32", graph.gat_comparison(repeats), "N20k E200k, 128 -> 8 x 16")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (3; decoding 2)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--only", help="comma-separated workloads (default: all)")
    parser.add_argument("--beside", action="store_true", help="run a second, busy process beside the table")
    args = parser.parse_args(argv)
    everything = {"bert", "vit", "translator", "gpt", "decode", "mha", "causal", "gat"}
    names = set(args.only.split(",")) if args.only else everything
    if names - everything:
        print(f"--only: unknown workloads {sorted(names - everything)}; choose from {sorted(everything)}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    beside = subprocess.Popen([sys.executable, "-c", SECOND_PROCESS]) if args.beside else None
    start = time.perf_counter()
    try:
        print(f"machine: {machine_line()}" + ("; a second busy process beside" if beside else ""))
        print(f"command: python -m benchmarks.goals {' '.join(argv if argv is not None else sys.argv[1:])}\n")
        header = ["workload", "peer", "precision", "peer (ms)", "attnlab (ms)", "ratio", "goal", "verdict", "load", "notes"]
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header), flush=True)
        table = Table()
        run(names, 3 if args.quick else 11, 2 if args.quick else 5, 200, table)
    finally:
        if beside is not None:
            beside.kill()
            beside.wait()
    print(f"\n{len(table.rows)} rows in {time.perf_counter() - start:.0f} s; {machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
