"""Is a two-thread training process repeatable bit for bit? Fresh processes, with and
without the one-thread warm-up of PyTorch's vector math library (training/threads.py).

Each child builds the char-base GPT (seed 0, dropout 0.1), runs one forward/backward,
gradient clipping and one AdamW step on 2 threads, and prints a hash of the weights. The
children alternate (plain, warm-up, plain, ...) so both see the same load; a child whose
hash differs from its kind's most common one is a variant. The variant seen on a 2-core
Xeon under load: the main thread's half of AdamW's first square root computed as
x * rsqrt(x) with AVX's 12-bit approximation. Quiet machines rarely show it: run it beside
other work (e.g. the test suite).

Run: python -m benchmarks.vml_first_call [--processes 30]
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys

from benchmarks.common import machine_line

CHILD = """
import dataclasses, hashlib, sys, torch
torch.set_num_threads(2)
if sys.argv[1] == "warm-up":
    from attnlab.training.threads import warm_up_vml
    warm_up_vml()
from attnlab.models.gpt import GPT, GPT_PRESETS
from attnlab.training.optim import param_groups
torch.manual_seed(0)
cfg = dataclasses.replace(GPT_PRESETS["char-base"], vocab_size=100, dropout=0.1, attention_dropout=0.1)
model = GPT(cfg).train()
opt = torch.optim.AdamW(param_groups(model, 0.01), lr=3e-4)
ids = torch.randint(0, 100, (4, 256), generator=torch.Generator().manual_seed(1))
model(ids, labels=ids).loss.backward()
torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
opt.step()
digest = hashlib.sha256()
for _, p in sorted(model.named_parameters()):
    digest.update(p.detach().numpy().tobytes())
print(digest.hexdigest())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=30, help="children of each kind")
    args = parser.parse_args()
    print(machine_line())
    hashes: dict[str, list[str]] = {"plain": [], "warm-up": []}
    for i in range(args.processes):
        for kind in hashes:
            done = subprocess.run([sys.executable, "-c", CHILD, kind], capture_output=True, text=True, check=True)
            hashes[kind].append(done.stdout.strip())
        print(f"  {i + 1}/{args.processes}", file=sys.stderr, flush=True)
    for kind, seen in hashes.items():
        _, count = collections.Counter(seen).most_common(1)[0]
        print(f"{kind:8s} {len(seen) - count} of {len(seen)} processes differ from the most common weights")
    print("same weights, plain and warm-up:", collections.Counter(hashes["plain"]).most_common(1)[0][0]
          == collections.Counter(hashes["warm-up"]).most_common(1)[0][0])


if __name__ == "__main__":
    main()
