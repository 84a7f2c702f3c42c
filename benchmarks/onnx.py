"""ONNX Runtime against attnlab's PyTorch path, side by side in one process (fp32, CPU).

Each model is exported with :func:`attnlab.export.export_onnx` and run by
:mod:`attnlab.export.runtime`; both sides run the same inputs and, for generation, the
very same decoding loop (``evaluation.sampling.generate``, ``evaluation.decoding.decode``),
so the difference is the model step: PyTorch eager (attnlab's fused SDPA, its C decode
step for one unpadded sequence, oneDNN linear maps) against ONNX Runtime's graph (fused
and constant-folded at load, one ``session.run`` per step, the cache copied to and from
NumPy each step). Timings are interleaved medians; ratio = PyTorch time / ORT time
(> 1: ONNX Runtime faster). Models are randomly initialised (speed does not depend on
training). The translator decodes without an end token, so both sides decode the same
number of steps; an untrained model's near-uniform distributions make near-ties, so
the table counts the sentences whose tokens are identical rather than asserting it (the
tests do, on peaked models).

    encoder forward   BERT (4 x 256, 4 heads), batch 8 x 128 tokens
    GPT decode        char-base GPT (4 x 256), 16-token prompt + 64 new tokens, greedy, batch 1 and 8
    translator        Transformer "small" (2 + 2 layers x 128), 32 sentences of 12 tokens, greedy and beam 4

Run: python -m benchmarks.onnx [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import torch

from attnlab.evaluation.decoding import decode
from attnlab.export import export_onnx, load_runtime
from attnlab.models import BERT, GPT, Transformer
from attnlab.models.bert import bert_config
from attnlab.models.gpt import gpt_config
from attnlab.models.transformer import TRANSFORMER_PRESETS
from benchmarks.common import compare, machine_line, print_table


def exported(model, folder: Path, name: str, threads: int):
    model.eval().save_pretrained(folder / name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = export_onnx(folder / name, folder / f"{name}-onnx")
    return load_runtime(out, threads=threads)


def encoder_rows(folder: Path, threads: int, repeats: int) -> list[list[object]]:
    torch.manual_seed(0)
    model = BERT(bert_config("small", hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024,
                             max_positions=128, dropout=0.0, attention_dropout=0.0))
    rt = exported(model, folder, "bert", threads)
    ids = torch.randint(1, model.config.vocab_size, (8, 128))
    mask = torch.ones_like(ids)

    def pytorch():
        with torch.inference_mode():
            model(ids, attention_mask=mask)

    c = compare("BERT forward", pytorch, lambda: rt(ids, attention_mask=mask), repeats=repeats)
    return [["BERT 4x256 forward, 8 x 128 tokens (ms)", c.peer_s * 1e3, c.ours_s * 1e3, c.ratio]]


def gpt_rows(folder: Path, threads: int, repeats: int, new: int) -> list[list[object]]:
    torch.manual_seed(0)
    model = GPT(gpt_config("char-base"))
    rt = exported(model, folder, "gpt", threads)
    rows = []
    for batch in (1, 8):
        prompt = torch.randint(0, 256, (batch, 16))
        a, b = model.generate(prompt, new), rt.generate(prompt, new)
        same = int((a == b).all(dim=1).sum())
        c = compare(f"GPT decode b={batch}", lambda p=prompt: model.generate(p, new), lambda p=prompt: rt.generate(p, new),
                    repeats=repeats, warmup=1)
        tokens = batch * new
        rows.append([f"GPT 4x256 greedy, batch {batch}, 16 + {new} tokens (tokens/s; {same}/{batch} identical)", tokens / c.peer_s,
                     tokens / c.ours_s, c.ratio])
    return rows


def translator_rows(folder: Path, threads: int, repeats: int) -> list[list[object]]:
    torch.manual_seed(0)
    model = Transformer(TRANSFORMER_PRESETS["small"])
    rt = exported(model, folder, "transformer", threads)
    src = torch.randint(4, model.config.src_vocab_size, (32, 12))
    rows = []
    for beam in (1, 4):
        def run(m, b=beam):  # eos_id=-1: no sentence ends early, both decode 34 tokens per sentence
            return decode(m, src, bos_id=2, eos_id=-1, max_len=34, beam_size=b)

        same = sum(a == b for a, b in zip(run(model).tokens, run(rt).tokens))
        c = compare(f"translate beam {beam}", lambda: run(model), lambda: run(rt), repeats=repeats, warmup=1)
        name = "greedy" if beam == 1 else f"beam {beam}"
        rows.append([f"Transformer small, 32 sentences x 34 tokens, {name} (sentences/s; {same}/32 identical)",
                     32 / c.peer_s, 32 / c.ours_s, c.ratio])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads and ONNX Runtime intra-op threads")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and tokens")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats, new = (3, 32) if args.quick else (7, 64)
    print(f"machine: {machine_line()}; onnxruntime {__import__('onnxruntime').__version__}, "
          f"{args.threads} intra-op thread(s)\n")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = encoder_rows(folder, args.threads, repeats) + gpt_rows(folder, args.threads, repeats, new) \
            + translator_rows(folder, args.threads, repeats)
    print_table("ONNX Runtime vs attnlab PyTorch, fp32 CPU (medians of interleaved runs)",
                ["workload", "PyTorch", "ONNX Runtime", "ratio (> 1: ORT faster)"], rows)


if __name__ == "__main__":
    main()
