"""GPT benchmarks: attnlab's GPT side by side with transformers' GPT2LMHeadModel holding the
same weights, in one process, timings interleaved (medians; ratio > 1: attnlab faster).

1. Training step (forward, backward, AdamW) in fp32 and in bf16 autocast, with the
   model FLOP utilisation (MFU) of each against this machine's *measured* matrix-multiply
   peak of that dtype. FLOPs per step = tokens * (6 N + 12 L T D) (Chowdhery et al. 2022,
   PaLM appendix B): N the matrix parameters (blocks + tied output layer), L layers,
   T sequence length, D width.
2. Greedy decoding at batch 1: HF ``generate()`` vs ``GPT.generate`` (KV cache), tokens/s,
   with attnlab's C decoding step (the default on the CPU) and with its PyTorch path
   (``ATTNLAB_NATIVE=0``), and the rate at which attnlab reads the weights (every block
   tensor and the output layer once per token: the memory traffic that bounds any
   batch-1 decoder) beside the rate at which this host reads that many bytes at all
   (:func:`read_bandwidth`). Then greedy decoding at batch 8 and beam search with 4 beams
   (HF ``generate(num_beams=4)`` vs attnlab's ``beam_search`` over ``GPT.decode_step``);
   the end token is suppressed on both sides (``min_new_tokens``) so both make every token.

Run (CPU, the 4 x 256 char-level shape):  python -m benchmarks.gpt
     (GPU, the 124M shape):  python -m benchmarks.gpt --device cuda --preset gpt2-124m --batch-size 16 \
                                 --seq-len 1024 --peak-size 8192 --compile
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import time

import torch
import transformers

from attnlab.config import config_to_dict
from attnlab.evaluation.decoding import beam_search
from attnlab.interop.hf_gpt2 import config_to_hf
from attnlab.kernels.linear import linear
from attnlab.models.gpt import GPT, gpt_config
from attnlab.training.optim import adamw
from benchmarks.common import Comparison, compare, machine_line, print_table, train_step

transformers.logging.set_verbosity_error()


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_peak(dtype: torch.dtype, device: str, size: int, repeats: int = 10) -> float:
    """Measured FLOP/s of a square matrix product: the fastest of ``repeats`` runs of the
    fastest product this host has -- torch's ``a @ b`` and attnlab's linear map (oneDNN on
    AMD, where MKL's sgemm reaches half of it: 95 vs 207 GFLOP/s on one EPYC core), so an
    MFU never divides by a slower product than the model itself uses."""
    a, b = (torch.randn(size, size, dtype=dtype, device=device) for _ in range(2))
    best = float("inf")
    for product in (lambda: a @ b, lambda: linear(a, b)):
        for _ in range(3):
            product()
        for _ in range(repeats):
            sync(device)
            start = time.perf_counter()
            product()
            sync(device)
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best  # a peak: the best run


def step_flops(model: GPT, batch: int, length: int) -> float:
    c = model.config
    matrices = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and "positions" not in n)
    return batch * length * (6 * matrices + 12 * c.num_layers * length * c.d_model)


def make_pair(preset: str, vocab_size: int | None, device: str) -> tuple[transformers.GPT2LMHeadModel, GPT]:
    config = gpt_config(preset, dropout=0.0, attention_dropout=0.0)
    if vocab_size is not None:
        config = dataclasses.replace(config, vocab_size=vocab_size)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(**config_to_hf(config_to_dict(config)))).to(device)
    return hf, GPT.from_hf(hf)


def train_comparison(hf, ours, ids: torch.Tensor, bf16: bool, repeats: int, compiled: bool = False) -> Comparison:
    """Forward, loss, backward, AdamW (fused on both sides: HF Trainer's default and attnlab's)."""
    device = ids.device.type
    hf_fast = torch.compile(hf) if compiled else hf
    ours_fast = torch.compile(ours) if compiled else ours
    return compare(
        f"GPT train step {'bf16' if bf16 else 'fp32'}",
        train_step(hf, lambda: hf_fast(ids, labels=ids).loss, torch.optim.AdamW(hf.parameters(), lr=1e-4, fused=True),
                   bf16, sync=lambda: sync(device)),
        train_step(ours, lambda: ours_fast(ids, labels=ids).loss, adamw(ours.parameters(), lr=1e-4), bf16,
                   sync=lambda: sync(device)),
        repeats=repeats,
    )


def training_rows(args, hf, ours) -> list[list[object]]:
    ids = torch.randint(0, ours.config.vocab_size, (args.batch_size, args.seq_len), device=args.device)
    flops = step_flops(ours, args.batch_size, args.seq_len)
    rows = []
    for bf16 in (False, True) if args.device == "cpu" else (True,):
        dtype = torch.bfloat16 if bf16 else torch.float32
        peak = matmul_peak(dtype, args.device, args.peak_size)
        r = train_comparison(hf, ours, ids, bf16, args.repeats, args.compile)
        rows.append([
            "bf16 autocast" if bf16 else "fp32", r.peer_s * 1e3, r.ours_s * 1e3, f"{r.ratio:.2f}x",
            f"{flops / r.peer_s / peak:.1%}", f"{flops / r.ours_s / peak:.1%}", f"{peak / 1e12:.3g}",
        ])
    return rows


def weight_bytes(model: GPT) -> int:
    """Bytes a batch-1 decoding step must read: every block tensor and the output layer."""
    layers = model._decoding.layers(model)
    head = model.lm_head_weight
    tensors = [t for w in layers for t in w if isinstance(t, torch.Tensor)]  # a layer may hold a None scale
    return sum(t.numel() * t.element_size() for t in tensors) + head.numel() * head.element_size()


def read_bandwidth(nbytes: int, repeats: int = 20) -> float:
    """Bytes/s at which this host reads a buffer of ``nbytes`` again and again (torch's sum
    over fp32, one vectorized pass; the best of ``repeats``): the ceiling of a batch-1 decoder
    that reads that many weight bytes per token (from the same cache level, here the L3)."""
    a = torch.ones(max(nbytes // 4, 1))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a.sum()
        best = min(best, time.perf_counter() - start)
    return a.numel() * 4 / best


@contextlib.contextmanager
def native_step(enabled: bool):
    """Run attnlab's decoding with its C step (the default) or with its PyTorch path."""
    previous = os.environ.get("ATTNLAB_NATIVE")
    os.environ["ATTNLAB_NATIVE"] = "1" if enabled else "0"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["ATTNLAB_NATIVE"]
        else:
            os.environ["ATTNLAB_NATIVE"] = previous


END = 0  # the end-of-text id both sides are given (and told not to emit before the last token)


class BeamSteps:
    """``GPT.decode_step`` as the step decoder of :func:`attnlab.evaluation.decoding.beam_search`:
    the prompt but its last token fills the caches, the last token is the first one fed,
    and the end id is suppressed (as HF's ``min_new_tokens`` does)."""

    def __init__(self, model: GPT, new_tokens: int):
        self.model, self.new_tokens = model, new_tokens

    def start(self, prompt: torch.Tensor):
        caches = self.model.make_caches(capacity=prompt.shape[1] + self.new_tokens)
        self.model(prompt[:, :-1], caches=caches, last_only=True)
        return caches

    def step(self, tokens: torch.Tensor, caches):
        logits = self.model.decode_step(tokens[:, None], caches).logits[:, 0].float()  # (N, V)
        logits[:, END] = float("-inf")
        return logits.log_softmax(-1), caches

    def reorder(self, caches, index: torch.Tensor):
        caches.reorder(index)  # on the C step: the beams' lineage table, not a copy of the caches
        return caches


def decode_comparisons(hf, ours, device: str, new_tokens: int, repeats: int, pytorch_path: bool = True):
    """``[(mode, batch rows, Comparison)]``: greedy batch 1 (C step, and the PyTorch path when
    asked), greedy batch 8, beam 4 at batch 1; the same tokens checked first where greedy."""
    hf.eval(), ours.eval()
    n = new_tokens
    g = torch.Generator().manual_seed(2)
    results = []
    for mode, batch, beams, native in (
        ("greedy, batch 1, C step", 1, 1, True), ("greedy, batch 1, PyTorch path", 1, 1, False),
        ("greedy, batch 8", 8, 1, True), ("beam 4, batch 1", 1, 4, True),
    ):
        if (not native and not pytorch_path) or (native and batch == 1 and beams == 1 and device != "cpu"):
            continue
        prompt = torch.randint(1, ours.config.vocab_size, (batch, 8), generator=g).to(device)
        # HF infers padding from pad_token_id when no mask is given: give the mask
        hf_options = dict(attention_mask=torch.ones_like(prompt), do_sample=False, pad_token_id=END,
                          eos_token_id=END, num_beams=beams)

        def peer():
            hf.generate(prompt, max_new_tokens=n, min_new_tokens=n, **hf_options)
            sync(device)

        if beams == 1:
            def mine():
                with native_step(native):
                    ours.generate(prompt, n)
                sync(device)

            with native_step(native):
                assert torch.equal(hf.generate(prompt, max_new_tokens=20, **{**hf_options, "eos_token_id": None}),
                                   ours.generate(prompt, 20))
        else:
            steps = BeamSteps(ours, n)

            def mine():
                beam_search(steps, prompt, bos_id=int(prompt[0, -1]), eos_id=END, max_len=n, beam_size=beams)
                sync(device)

        results.append((mode, batch * beams, compare(f"GPT decode {mode}", peer, mine, repeats=repeats, warmup=1)))
    return results


def decoding_rows(args, hf, ours) -> list[list[object]]:
    n, traffic = args.new_tokens, weight_bytes(ours)
    host = read_bandwidth(traffic) if args.device == "cpu" else None
    rows = []
    for mode, rows_, r in decode_comparisons(hf, ours, args.device, n, args.decode_repeats):
        reads = f"{traffic * n / r.ours_s / 1e9:.3g}" if rows_ == 1 else ""
        if reads and host:
            reads += f" of {host / 1e9:.3g} (host)"
        rows.append([mode, n, rows_ * n / r.peer_s, rows_ * n / r.ours_s, f"{r.ratio:.2f}x", reads])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--preset", default="char-base", help="GPT preset (char-base: 4 x 256; char-small: 4 x 128; gpt2-124m)")
    parser.add_argument("--vocab-size", type=int, help="override the preset's vocabulary")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--decode-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--peak-size", type=int, default=2048, help="side of the square matmul measuring the peak")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models for the training step")
    parser.add_argument("--skip-decode", action="store_true")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--quick", action="store_true", help="tiny preset, short sequences, fewer repeats")
    args = parser.parse_args()
    if args.quick:
        args.preset, args.seq_len, args.new_tokens, args.repeats, args.decode_repeats = "tiny", 32, 24, 3, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    hf, ours = make_pair(args.preset, args.vocab_size, args.device)
    c = ours.config
    print(f"machine: {machine_line()}; device {args.device}")
    print(f"model: {args.preset} ({c.num_layers} layers x {c.d_model}, {c.num_heads} heads, vocab {c.vocab_size}), "
          f"{ours.num_parameters() / 1e6:.1f}M parameters; B={args.batch_size}, T={args.seq_len}\n")
    if not args.skip_train:
        print_table(
            "Training step (forward + backward + AdamW), ms",
            ["precision", "HF GPT2LMHeadModel", "attnlab GPT", "speed-up", "HF MFU", "attnlab MFU", "matmul peak TFLOP/s"],
            training_rows(args, hf, ours),
        )
    if not args.skip_decode:
        print_table(
            "Greedy decoding, tokens/s",
            ["mode", "new tokens", "HF tokens/s (all rows)", "attnlab tokens/s", "speed-up",
             "attnlab weight reads, GB/s (of the host's read rate of that many bytes)"],
            decoding_rows(args, hf, ours),
        )


if __name__ == "__main__":
    main()
