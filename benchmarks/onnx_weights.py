"""An export folder's size and a process's memory: weights inside each graph against one
shared ``weights.data`` (attnlab's export format 2).

One GPT (the 124M GPT-2 shape by default, randomly initialised) is exported once; the
"one copy per graph" folder is the same export with every graph's weights written back
into its ``.onnx`` (the layout before format 2). Each way of loading runs in a fresh
process that creates the ``prefill`` and ``decode`` sessions, runs a 64-token prompt and
20 one-token decode steps, and reads its memory: VmRSS and Pss (``/proc/self/smaps_rollup``;
file pages mapped by both sessions count once in Pss, twice in VmRSS):

    embedded   InferenceSession on each self-contained .onnx (the layout before format 2)
    external   InferenceSession on each .onnx of the shared folder, ONNX Runtime's defaults
               (it maps weights.data, then repacks the MatMul weights per session)
    attnlab    load_runtime: the same folder without repacking: both sessions compute
               from the one mapping

Run: python -m benchmarks.onnx_weights [--preset gpt2-124m] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from attnlab.export import export_onnx
from attnlab.models import GPT
from attnlab.models.gpt import gpt_config

_CHILD = """
import json, sys, time, numpy as np, onnxruntime as ort
folder, way, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
if way == "attnlab":
    from attnlab.export import load_runtime
    rt = load_runtime(folder, threads=threads)
    sessions = {n: s.session for n, s in rt.sessions.items()}
else:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    sessions = {n: ort.InferenceSession(f"{folder}/{n}.onnx", options, providers=["CPUExecutionProvider"])
                for n in ("prefill", "decode")}
ids = np.random.default_rng(0).integers(0, 1000, (1, 64))
start = time.perf_counter()
logits, *cache = sessions["prefill"].run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
prompt_ms, steps = 1000 * (time.perf_counter() - start), []
names = [i.name for i in sessions["decode"].get_inputs()][3:]
for t in range(64, 84):
    start = time.perf_counter()
    logits, *cache = sessions["decode"].run(None, {"input_ids": ids[:, :1], "position_ids": np.array([[t]]),
                                                   "attention_mask": np.ones((1, t + 1), dtype=np.int64),
                                                   **dict(zip(names, cache))})
    steps.append(1000 * (time.perf_counter() - start))
fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
fields.update(line.split(":", 1) for line in list(open("/proc/self/smaps_rollup"))[1:])
memory = {k: int(fields[k].split()[0]) // 1024 for k in ("VmRSS", "Pss")}
print(json.dumps({**memory, "prompt_ms": round(prompt_ms), "step_ms": round(float(np.median(steps)), 1)}))
"""


def _embedded_copy(folder: Path, target: Path) -> None:
    """The same graphs with their weights inside each .onnx (the layout before format 2)."""
    import onnx

    target.mkdir()
    for name in ("prefill", "decode"):
        model = onnx.load(str(folder / f"{name}.onnx"), load_external_data=True)
        onnx.save_model(model, str(target / f"{name}.onnx"))


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix in (".onnx", ".data")) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpt2-124m")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = GPT(gpt_config(args.preset))
    params_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model.save_pretrained(tmp / "ckpt")
        del model
        shared = export_onnx(tmp / "ckpt", tmp / "shared")
        _embedded_copy(shared, tmp / "embedded")
        print(f"{args.preset}: parameters {params_mb:.0f} MiB (fp32)")
        print(f"folder, weights inside each graph: {_size_mb(tmp / 'embedded'):.0f} MiB")
        graphs = sum(p.stat().st_size for p in shared.glob("*.onnx")) / 2**20
        weights = (shared / "weights.data").stat().st_size / 2**20
        print(f"folder, one weights.data: {graphs + weights:.0f} MiB (graphs {graphs:.2f} MiB + weights {weights:.0f} MiB)")
        for folder, way in ((tmp / "embedded", "embedded"), (shared, "external"), (shared, "attnlab")):
            out = subprocess.run([sys.executable, "-c", _CHILD, str(folder), way, str(args.threads)],
                                 capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            print(f"{way}: {json.loads(out)}  (MiB; 64-token prompt, median decode step)")


if __name__ == "__main__":
    main()
