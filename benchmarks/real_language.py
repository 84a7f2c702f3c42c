"""English -> Chinese / French / German from the gettext catalogs on this machine.

For every language: the cleaning report, the tokenizer measurements (vocabulary size,
tokens per message, unknown tokens, exact round trips on the valid split), the two
baselines (copy the source; the translation of the nearest training message by char
2-4-gram TF-IDF cosine) and the trained translators, all on the held-out test catalogs,
scored with :func:`attnlab.evaluation.real_language.score_translations`.

    python -m benchmarks.real_language                                   # zh_CN fr de, Transformer, 8 min each
    python -m benchmarks.real_language --languages zh_CN --models transformer seq2seq --minutes 8
    python -m benchmarks.real_language --languages fr de --models seq2seq --steps 2000
    python -m benchmarks.real_language --languages fr --models seq2seq --rnn-attention location --steps 2000
    python -m benchmarks.real_language --reuse        # score the checkpoints already in --out
    nice -n 5 python -m benchmarks.real_language --languages fr --minutes 15 --no-tokenizers   # the 15-minute row

Checkpoints go to ``--out/<lang>-<model>`` (the same folders ``attnlab train translate
--data gettext:<lang> --out ...`` writes); ``--reuse`` scores those instead of training.
Results: printed as markdown tables and written to ``--out/results_<languages>_<models>.json``;
each model's test translations to ``--out/test_<language>_<model>.tsv`` (source, reference, hypothesis).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from attnlab.apps import translate
from attnlab.data.bpe import tokenizer_stats, train_translation_bpe
from attnlab.data.gettext_corpus import GettextSplits, load_gettext
from attnlab.data.gettext_corpus.near_copies import count_near_copies
from attnlab.data.tokenizer import BPETokenizer, WordTokenizer
from attnlab.evaluation.real_language import copy_source, nearest_neighbour, score_translations
from attnlab.training import find_checkpoint
from benchmarks.common import load_average, machine_line

EXAMPLES = ["Open file", "Save changes before closing?", "Could not open %s", "Delete %d files?",
            "Print the document", "Connection refused", "Show hidden files", "%s: No such file or directory"]


def tokenizer_rows(splits: GettextSplits, side: str, sizes: tuple[int, ...] = (4000, 8000, 16000)) -> list[list[str]]:
    """Each tokenizer trained on train, measured on valid: vocab, tokens/message, unk %, round trip %."""
    train, valid = getattr(splits.train, side), getattr(splits.valid, side)
    makers = [("word", 8000, lambda n: WordTokenizer.train(train, max_size=n)),
              ("bpe (end-of-word)", 8000, lambda n: BPETokenizer.train(train, vocab_size=n))]
    makers += [("byte_bpe", n, lambda n: train_translation_bpe(train, n)) for n in sizes]
    rows = []
    for name, size, make in makers:
        s = tokenizer_stats(make(size), valid)
        rows.append([name, str(s["vocab_size"]), f"{s['tokens_per_text']:.1f}", f"{100 * s['unk_rate']:.2f}",
                     f"{100 * s['round_trip']:.1f}"])
    return rows


def attended(translator: translate.Translator, source: str) -> str:
    """``target token <- source token`` pairs: the source token each output token attends to
    most (last decoder layer's cross-attention, heads averaged), on the model's own output."""
    explained = translate.attentions(translator, [source])
    cross = explained.attentions.of_kind("cross")[-1][0].float().mean(0)  # (Lq, Lk)
    src, tgt = explained.labels["source"][0], explained.labels["target"][0]
    n_src, n_tgt = explained.extras["src_lengths"][0], explained.extras["tgt_lengths"][0]
    return "  ".join(f"{tgt[t].strip() or '␣'}←{src[int(cross[t, :n_src].argmax())].strip() or '␣'}"
                     for t in range(n_tgt))


def train_or_load(lang: str, model: str, args: argparse.Namespace) -> tuple[translate.Translator, list[str] | None, dict]:
    """The translator in ``--out/<lang>-<model>`` (trained now unless ``--reuse``), its test
    translations when it was trained now (the app decodes the test split), and its run facts."""
    out = Path(args.out) / (f"{lang}-{model}" if model == "transformer" or args.rnn_attention == "bahdanau"
                            else f"{lang}-{model}-{args.rnn_attention}")
    hypotheses = None
    facts = {}
    if not (args.reuse and find_checkpoint(out)):
        started, load_before = time.monotonic(), load_average()
        run = translate.train(translate.TranslateSettings(
            model=model, data=f"gettext:{lang}", threads=args.threads, out=str(out),
            **({"steps": args.steps} if args.steps else {"max_minutes": args.minutes}),
            **({"attention": args.rnn_attention} if model == "seq2seq" else {}),
            overwrite=True, progress=False, lr=None if model == "transformer" else 3e-3,  # None: the recipe's
            warmup=200 if model == "transformer" else 100,
        ))
        hypotheses = run.scores.hypotheses
        minutes = (time.monotonic() - started) / 60
        facts = {"minutes_with_decoding": round(minutes, 1), "load_before": round(load_before, 1),
                 "load_after": round(load_average(), 1), "test_line": f"test: {run.real_scores.summary()}"}
        print(f"  trained {lang} {model} in {minutes:.1f} min (training + test decoding), load average "
              f"{load_before:.1f} before, {load_average():.1f} after")
        print(f"  {facts['test_line']}")
    state = find_checkpoint(out)
    for name in ("trainer_state.json", "state.json"):
        if (state / name).is_file():
            data = json.loads((state / name).read_text())
            facts.update({k: data[k] for k in ("step", "elapsed_s") if k in data})
    return translate.Translator.load(state), hypotheses, facts


def write_translations(path: Path, sources: list[str], references: list[str], hypotheses: list[str]) -> None:
    """``source<TAB>reference<TAB>hypothesis`` per test message (tabs and newlines escaped), for reading
    the errors behind a score."""
    def cell(text: str) -> str:
        return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{cell(s)}\t{cell(r)}\t{cell(h)}\n" for s, r, h in zip(sources, references, hypotheses)),
                    encoding="utf-8")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--languages", nargs="+", default=["zh_CN", "fr", "de"])
    p.add_argument("--models", nargs="+", default=["transformer"], choices=["transformer", "seq2seq"])
    p.add_argument("--minutes", type=float, default=8.0, help="training budget per model")
    p.add_argument("--rnn-attention", default="bahdanau", help="the RNN's attention (seq2seq's --attention)")
    p.add_argument("--steps", type=int, help="a budget in updates instead of --minutes (the same on any machine)")
    p.add_argument("--threads", type=int, default=1, help="1: on a shared machine more threads spin and slow down")
    p.add_argument("--out", default="runs/real_language")
    p.add_argument("--reuse", action="store_true", help="score the checkpoints in --out instead of training")
    p.add_argument("--no-tokenizers", dest="tokenizers", action="store_false")
    args = p.parse_args()
    print(machine_line())
    results: dict[str, dict] = {}
    for lang in args.languages:
        splits = load_gettext(lang)
        result_near = count_near_copies(splits, splits.report)
        print(f"\n## en -> {lang}\n```\n" + "\n".join(splits.report.lines()) + "\n```")
        print(f"test catalogs: {', '.join(splits.catalogs['test'])}")
        result = results.setdefault(lang, {"kept": splits.report.kept, "test_catalogs": splits.catalogs["test"],
                                           "near_copies": result_near})
        if args.tokenizers:
            rows = tokenizer_rows(splits, "tgt")
            print("\n| target tokenizer | vocab | tokens / message | unknown % | exact round trip % |\n|---|---|---|---|---|")
            print("\n".join("| " + " | ".join(r) + " |" for r in rows))
            result["tokenizers"] = rows
        test = splits.test
        systems = {"copy source": copy_source(test.src),
                   "nearest training message": nearest_neighbour(splits.train.src, splits.train.tgt, test.src)}
        for model in args.models:
            translator, hypotheses, facts = train_or_load(lang, model, args)
            name = f"{model} (small)" if model == "transformer" else f"{model} (compact, {args.rnn_attention})"
            systems[name] = translator.translate(test.src) if hypotheses is None else hypotheses
            write_translations(Path(args.out) / f"test_{lang}_{model}.tsv", test.src, test.tgt, systems[name])
            result[f"{model}_run"] = facts
            print(f"  {name}: {facts.get('step')} updates, {facts.get('elapsed_s', 0) / 60:.1f} min of training")
            result[f"{model}_examples"] = dict(zip(EXAMPLES, translator.translate(EXAMPLES)))
            print("\n".join(f"  {s!r} -> {t!r}" for s, t in result[f"{model}_examples"].items()))
            result[f"{model}_attention"] = {s: attended(translator, s) for s in EXAMPLES[:3]}
            print("\n".join(f"  {s!r}: {a}" for s, a in result[f"{model}_attention"].items()))
        print(f"\n| system ({len(test)} test messages) | BLEU | chrF | exact % | placeholders kept % |\n|---|---|---|---|---|")
        for name, hyps in systems.items():
            scores = score_translations(test.src, hyps, test.tgt, lang)
            result[name] = scores.row()
            print(f"| {name} | " + " | ".join(scores.row()) + " |")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    name = f"results_{'_'.join(args.languages)}_{'_'.join(args.models)}.json"
    (Path(args.out) / name).write_text(json.dumps(results, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
