"""Where a training step's time goes: torch.profiler per op and per layer, attnlab beside HF.

The BERT and ViT training steps of ``benchmarks/encoders.py`` (same weights, same work,
fused AdamW), profiled for a few steps after a warm-up. Per op: the operators with the
most self time (backward ops included). Per part: the forward of each named part
(embeddings, attention, feed-forward, norms, head: ``record_function`` ranges that
forward hooks open and close), the whole backward, and the optimizer step.

    python -m benchmarks.profile_steps [--model bert|vit] [--bf16] [--steps 3] [--top 12]
"""

from __future__ import annotations

import argparse
import contextlib
from collections import defaultdict

import torch
from torch.autograd.profiler import record_function
from torch.profiler import ProfilerActivity, profile

from benchmarks import encoders
from benchmarks.common import machine_line

PARTS = ("embeddings", "attention", "feed-forward", "norm", "head", "other")


def _part(name: str, module: torch.nn.Module) -> str | None:
    """The group of a leaf-ish module by its name (HF's and attnlab's), or None to skip it."""
    lowered = name.lower()
    if not name or "." not in name and isinstance(module, torch.nn.ModuleList):
        return None
    if "embed" in lowered:
        return "embeddings"
    if "attn" in lowered or "attention" in lowered:
        return "attention"
    if any(k in lowered for k in ("intermediate", "ffn", "mlp", "output.dense", "feed")):
        return "feed-forward"
    if "norm" in lowered:
        return "norm"
    if any(k in lowered for k in ("cls", "classifier", "mlm", "lm_head", "pooler")):
        return "head"
    return None


@contextlib.contextmanager
def layer_ranges(model: torch.nn.Module):
    """Open a ``record_function`` range named ``part:forward`` around the forward of each
    top-most module of a part."""
    handles, seen = [], set()
    for name, module in model.named_modules():
        part = _part(name, module)
        if part is None or any(name.startswith(s + ".") for s in seen):
            continue
        seen.add(name)
        stack = []

        def enter(*_, label=f"{part}:forward", stack=stack):
            stack.append(record_function(label).__enter__())

        def leave(*_, stack=stack):
            if stack:
                stack.pop().__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def profile_step(step, model, steps: int):
    for _ in range(2):
        step()
    with layer_ranges(model), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    return prof.key_averages()


def _is_range(key: str) -> bool:
    return key.partition(":")[0] in PARTS and key.partition(":")[2] == "forward"


def tables(averages, steps: int, top: int) -> tuple[list[tuple[str, float]], dict[str, float]]:
    """(top ops by self time, ms per step; inclusive ms per step of each part's forward,
    of the backward and of the optimizer step)."""
    ops = sorted(((e.key, e.self_cpu_time_total / steps / 1e3) for e in averages
                  if not _is_range(e.key) and not e.key.startswith(("Optimizer.", "ProfilerStep"))),
                 key=lambda x: -x[1])[:top]
    parts: dict[str, float] = defaultdict(float)
    for e in averages:
        if _is_range(e.key):
            parts[e.key] += e.cpu_time_total / steps / 1e3
        elif e.key.startswith("Optimizer.step"):
            parts["optimizer step"] += e.cpu_time_total / steps / 1e3
        elif e.key == "autograd::engine::evaluate_function: AccumulateGrad" or e.key.startswith("autograd::engine"):
            parts["backward (all autograd functions)"] += e.cpu_time_total / steps / 1e3
    return ops, parts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["bert", "vit"], default="bert")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = (encoders.bert_steps if args.model == "bert" else encoders.vit_steps)(args.bf16)
    print(f"machine: {machine_line()}; {args.model} train step, {'bf16 autocast' if args.bf16 else 'fp32'}\n")
    results = {side: tables(profile_step(step, model, args.steps), args.steps, args.top)
               for side, (model, step) in zip(("HF", "attnlab"), steps)}
    for side, (ops, _) in results.items():
        print(f"### {side}: top ops by self time (ms per step)\n\n| op | ms |\n|---|---|")
        print("\n".join(f"| `{k}` | {v:.1f} |" for k, v in ops) + "\n")
    keys = sorted(set(results["HF"][1]) | set(results["attnlab"][1]))
    print("### per part (ms per step, inclusive)\n\n| part | HF | attnlab |\n|---|---|---|")
    print("\n".join(f"| {k} | {results['HF'][1].get(k, 0):.1f} | {results['attnlab'][1].get(k, 0):.1f} |" for k in keys))
    print(f"\nafter: {machine_line()}")


if __name__ == "__main__":
    main()
