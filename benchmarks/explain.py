"""How long ``attnlab explain`` takes on a long input: every method and both faithfulness
curves for one next-token prediction of a GPT-2-shaped model (random init).

Default: 512 tokens, 12 layers x 12 heads x 768, vocabulary 50,257 (GPT-2 small);
integrated gradients at 32 steps in batches of ``--batch``; the curves at ``--curve-points``
points each (default 11, ``attnlab explain``'s; 21 the finer grid) plus the ERASER bins off
that grid, every method's perturbed copies deduplicated and scored together in batches of
``--batch`` (``faithfulness.faithfulness_many``). Attention
flow is skipped above its edge bound (it says so): an exact max-flow per token is
O(V^2 sqrt(E)) on V = 13 x 512 nodes.

Run: python -m benchmarks.explain [--tokens 512 --layers 12 --d-model 768 --heads 12]

``--translator DIR [--sentences 100]`` instead explains the first N test sentences of the
synthetic corpus (``default``, seed 0: the demo's) with a translator checkpoint as ``attnlab
explain`` does (every method, head importance, the pruning curve) and prints the wall and CPU
time of each phase: goal B.

``--precision-check DIR [INPUT ...]`` instead explains a trained checkpoint's predictions in fp32
and under bf16 autocast (integrated gradients' forward-backwards and the curves' forwards; every
method but flow; the app's examples when no INPUT): the Spearman correlation of integrated
gradients' per-unit attributions in the two, each method's AOPC, insertion AUC,
comprehensiveness and sufficiency in both, the Spearman correlation of the methods' AOPC,
whether the AOPC order is the same, and the time of each (docs/explain.md, "bf16").

``--tables A.json B.json ...`` (files of ``attnlab explain --json``) instead prints the
faithfulness table of each as Markdown and draws each one's mean deletion and insertion
curves per method to ``--images DIR/explain_<kind>.png`` (docs/explain.md's tables).
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path

import torch

from attnlab.apps.explain import gpt_predictions
from attnlab.apps.lm import LoadedLM
from attnlab.explain.faithfulness import POINTS, PRECISION, PRECISIONS, faithfulness_many
from attnlab.explain.flow import TooLarge
from attnlab.explain.integrated_gradients import integrated_gradients
from attnlab.explain.methods import METHODS
from attnlab.explain.padded import TOKENS
from attnlab.models.gpt import GPT, GPTConfig
from benchmarks.common import machine_line


class IdTokenizer:
    """Token ids written as text: ``"5 17 3"`` (the model is random; the text is irrelevant)."""

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size

    def encode(self, text: str) -> list[int]:
        return [int(t) for t in text.split()]

    def decode(self, ids: list[int]) -> str:
        return " ".join(map(str, ids))


def markdown_table(data: dict) -> str:
    rows = ["| method | AOPC ↑ | deletion AUC ↓ | insertion AUC ↑ | comprehensiveness ↑ | sufficiency ↓ |",
            "|---|---:|---:|---:|---:|---:|"]
    for name in data["ranked"]:
        m = data["methods"][name]
        rows.append(f"| {name} | {m['aopc']:.4f} | {m['deletion_auc']:.4f} | {m['insertion_auc']:.4f} | "
                    f"{m['comprehensiveness']:.4f} | {m['sufficiency']:.4f} |")
    return "\n".join(rows)


def draw_curves(data: dict, path: Path) -> Path:
    """Mean deletion and insertion curves per method (each example's curve on a common grid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.linspace(0, 1, 21)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name in data["ranked"]:
        for ax, key in zip(axes, ("deletion", "insertion")):
            curves = [np.interp(grid, e["curves"][name]["fractions"], e["curves"][name][key])
                      for e in data["examples"] if e["curves"].get(name)]
            ax.plot(grid, np.mean(curves, axis=0), label=name, lw=2.5 if name == "random" else 1.5,
                    ls="--" if name == "random" else "-")
    for ax, key in zip(axes, ("deletion: p(prediction) as units are removed", "insertion: as units are added back")):
        ax.set_xlabel("fraction of the input units")
        ax.set_ylabel("mean p(explained prediction)")
        ax.set_title(key, fontsize=10)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"{data['kind']}: {len(data['examples'])} predictions, removed units become "
                 f"{data['examples'][0]['replacement']}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def tables(files: list[str], images: Path) -> None:
    for file in files:
        data = json.loads(Path(file).read_text())
        print(f"\n### {data['kind']}\n\n{markdown_table(data)}\n")
        kind = data["kind"]
        print(f"![{kind}]({draw_curves(data, images / f'explain_{kind}.png')})")


def translator_goal(ckpt: str, sentences: int, points: int, precision: str) -> None:
    """Goal B: ``attnlab explain``'s work on a translator's first ``sentences`` test sentences."""
    from attnlab.apps.explain import load, predictions
    from attnlab.data.synthetic import synthetic_corpus
    from attnlab.explain.evaluate import evaluate
    from attnlab.explain.heads import head_importance, pruning_curve

    sources = synthetic_corpus("default", seed=0).test.src[:sentences]
    loaded = load(ckpt, [])
    print(machine_line())
    print(f"translator {ckpt}: {sentences} test sentences, curves and integrated gradients in {precision}, "
          f"torch threads {torch.get_num_threads()}; curve copies of all sentences in padded batches of "
          f"{TOKENS} positions, each copy's target cut to the steps that read it")
    clock = [time.perf_counter(), time.process_time()]
    total = list(clock)

    def phase(name: str) -> None:
        now = [time.perf_counter(), time.process_time()]
        print(f"{name:<34}{now[0] - clock[0]:>8.1f} s wall{now[1] - clock[1]:>8.1f} s CPU", flush=True)
        clock[:] = now

    _, xs = predictions(loaded, sources)
    phase(f"translate, {len(xs)} predictions")
    methods = {**METHODS, "integrated_gradients": partial(integrated_gradients, precision=precision)}
    result = evaluate(xs, methods, points, precision)
    phase("methods and curves")
    importance = head_importance(xs, xs[0].module)
    pruning_curve(xs, xs[0].module, importance.masked)
    phase("head importance, pruning curve")
    print(result.format_table())
    print(f"all: {time.perf_counter() - total[0]:.1f} s wall, {time.process_time() - total[1]:.1f} s CPU")


def precision_check(ckpt: str, inputs: list[str], points: int) -> None:
    """fp32 against bf16 (integrated gradients' forward-backwards and the curves' forwards):
    do the attributions, the measures and the ranking of the methods agree?"""
    from scipy.stats import spearmanr

    from attnlab.apps.explain import load, predictions
    from attnlab.explain.evaluate import MEASURES
    from attnlab.explain.explainable import groups
    from attnlab.explain.faithfulness import faithfulness_shared

    kind, xs = predictions(load(ckpt, inputs), inputs)
    methods = {n: m for n, m in METHODS.items() if n != "flow"}  # flow's order is rollout's on these
    print(machine_line())
    print(f"{kind} {ckpt}: {len(xs)} predictions, {xs[0].num_units}..{max(x.num_units for x in xs)} units, "
          f"curve points: {points} beyond 64 units")
    table, seconds, ig = {}, {}, {}
    for precision in ("fp32", "bf16"):
        start, sums = time.perf_counter(), {n: dict.fromkeys(MEASURES, 0.0) for n in methods}
        chosen = {**methods, "integrated_gradients": partial(integrated_gradients, precision=precision)}
        runs = [(g, [{n: m(x).detach().double().cpu() for n, m in chosen.items()} for x in g]) for g in groups(xs)]
        ig[precision] = [a["integrated_gradients"] for _, rs in runs for a in rs]
        for group, attributions in runs:
            for measured in faithfulness_shared(group, attributions, points=points, precision=precision):
                for n, m in measured.items():
                    for key in MEASURES:
                        sums[n][key] += m[key] / len(xs)
        seconds[precision], table[precision] = time.perf_counter() - start, sums
    rho = [spearmanr(a, b).statistic for a, b in zip(ig["fp32"], ig["bf16"]) if len(a) > 2]
    print(f"integrated gradients fp32 vs bf16, Spearman of the per-unit attributions: mean {sum(rho) / len(rho):.4f}, "
          f"min {min(rho):.4f} over {len(rho)} predictions of 3+ units")
    print(f"{'method':<22}" + "".join(f"{k[:12] + ' fp32':>18}{'bf16':>9}" for k in MEASURES))
    for n in methods:
        print(f"{n:<22}" + "".join(f"{table['fp32'][n][k]:>18.4f}{table['bf16'][n][k]:>9.4f}" for k in MEASURES))
    aopc = {p: [table[p][n]["aopc"] for n in methods] for p in table}
    order = {p: sorted(methods, key=lambda n: -table[p][n]["aopc"]) for p in table}
    worst = max(abs(table["fp32"][n][k] - table["bf16"][n][k]) for n in methods for k in MEASURES)
    print(f"AOPC Spearman {spearmanr(aopc['fp32'], aopc['bf16']).statistic:.4f}; same order: "
          f"{order['fp32'] == order['bf16']}; largest |fp32 - bf16| of any measure {worst:.4f}")
    print(f"fp32 order: {' > '.join(order['fp32'])}\nbf16 order: {' > '.join(order['bf16'])}")
    print(f"attributions and curves: fp32 {seconds['fp32']:.1f} s, bf16 {seconds['bf16']:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", nargs="+", metavar="JSON", help="print these explain --json files' tables")
    parser.add_argument("--images", type=Path, default=Path("docs/images"))
    parser.add_argument("--translator", metavar="DIR", help="goal B: explain this translator's test sentences")
    parser.add_argument("--sentences", type=int, default=100)
    parser.add_argument("--precision", choices=PRECISIONS, default=PRECISION,
                        help="the curves' and integrated gradients' forwards")
    parser.add_argument("--precision-check", nargs="+", metavar=("DIR", "INPUT"),
                        help="curves in fp32 and bf16 on this checkpoint's predictions: do they agree?")
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--d-model", type=int, default=768)
    parser.add_argument("--vocab", type=int, default=50257)
    parser.add_argument("--steps", type=int, default=32, help="integrated gradients' steps")
    parser.add_argument("--batch", type=int, default=8, help="copies per forward (IG steps, curve points)")
    parser.add_argument("--curve-points", type=int, default=POINTS, help="curve points beyond 64 tokens")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.tables:
        return tables(args.tables, args.images)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.translator:
        return translator_goal(args.translator, args.sentences, args.curve_points, args.precision)
    if args.precision_check:
        return precision_check(args.precision_check[0], args.precision_check[1:], args.curve_points)
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=args.vocab, context_length=max(1024, args.tokens), num_layers=args.layers,
                       num_heads=args.heads, d_model=args.d_model, dropout=0.0, attention_dropout=0.0)
    model = GPT(config).eval()
    text = " ".join(str(int(i)) for i in torch.randint(0, args.vocab, (args.tokens,)))
    (x,) = gpt_predictions(LoadedLM(model, IdTokenizer(args.vocab)), [text])
    print(machine_line())
    print(f"GPT {args.layers} x {args.heads} heads x {args.d_model}, {args.tokens} tokens, "
          f"IG {args.steps} steps, batches of {args.batch}, curve points: {args.curve_points} (+ ERASER bins), "
          f"curves and IG in {args.precision}, "
          f"torch threads {torch.get_num_threads()}")
    total, total_cpu = time.perf_counter(), time.process_time()
    print(f"{'method':<22}{'attribution s':>15}{'CPU s':>9}")
    attributions = {}
    for name, method in METHODS.items():
        start, cpu = time.perf_counter(), time.process_time()
        try:
            attributions[name] = method(x, steps=args.steps, batch=args.batch, precision=args.precision) \
                if name == "integrated_gradients" else method(x)
        except TooLarge as e:
            print(f"{name:<22}skipped: {e}")
            continue
        print(f"{name:<22}{time.perf_counter() - start:>15.2f}{time.process_time() - cpu:>9.2f}", flush=True)
    start, cpu = time.perf_counter(), time.process_time()
    measured = faithfulness_many(x, attributions, chunk=args.batch, points=args.curve_points,
                                 precision=args.precision)  # deduplicated
    print(f"curves of {len(measured)} methods: {time.perf_counter() - start:.1f} s wall, "
          f"{time.process_time() - cpu:.1f} s CPU; AOPC " + ", ".join(f"{name} {m['aopc']:.4f}" for name, m in measured.items()))
    print(f"all methods and curves: {time.perf_counter() - total:.1f} s wall, {time.process_time() - total_cpu:.1f} s CPU")


if __name__ == "__main__":
    main()
