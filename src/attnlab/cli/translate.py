"""``attnlab train translate`` and ``attnlab translate``: thin calls into attnlab.translation."""

from __future__ import annotations

import sys

from attnlab.cli.main import add_command
from attnlab.cli.options import (
    add_guided_alignment_options,
    add_run_options,
    apply_threads,
    max_time_s,
)

TRAIN_EXAMPLES = """  attnlab train translate                                  # synthetic corpus, small preset
  attnlab train translate --steps 200 --out runs/quick
  attnlab train translate --data pairs.tsv --tokenizer bpe --vocab-size 8000 --out runs/mine
  attnlab train translate --data train.en --tgt-data train.de --preset base --bf16
  attnlab train translate --data pairs.tsv --align pairs.align --guided-alignment 1 --out runs/aligned
  attnlab train translate --out runs/mine --resume                      # continue a run
"""

TRANSLATE_EXAMPLES = """  attnlab translate --ckpt runs/demo/model "the small cat sees a dog ."
  attnlab translate --ckpt runs/demo/model --beam 4 < sentences.txt
"""


def register_train(tasks) -> None:
    p = add_command(tasks, "translate", "train a Transformer translator (synthetic corpus or your parallel text)", TRAIN_EXAMPLES)
    p.add_argument("--data", help="TSV of source<TAB>target, a folder of {train,valid,test}.tsv, or a source text file")
    p.add_argument("--tgt-data", help="target text file, line-aligned with --data")
    p.add_argument("--corpus", default="default", help="synthetic corpus preset when --data is not given (tiny, default, hard)")
    p.add_argument("--out", default="runs/translate", help="checkpoint folder")
    p.add_argument("--preset", default="small", help="model preset (tiny, small, base, big)")
    p.add_argument("--tokenizer", default="word", choices=["word", "bpe"])
    p.add_argument("--vocab-size", type=int, default=8000, help="BPE vocabulary size (word: upper bound)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=200, help="warm-up updates")
    p.add_argument("--eval-every", type=int, default=0, help="validate every N updates (0: at the end)")
    add_guided_alignment_options(p)
    add_run_options(p)
    p.set_defaults(func=run_train)


def register(commands) -> None:
    p = add_command(commands, "translate", "translate sentences with a trained translator", TRANSLATE_EXAMPLES)
    p.add_argument("sentences", nargs="*", help="sentences to translate (default: lines on stdin)")
    p.add_argument("--ckpt", required=True, help="translator checkpoint folder")
    p.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    p.add_argument("--alpha", type=float, default=0.6, help="length penalty exponent of beam search")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run_translate)


def run_train(args) -> int:
    from attnlab.translation import (
        TranslatorSetup,
        evaluate_translator,
        paper_train_config,
        train_translator,
    )

    apply_threads(args)
    setup = TranslatorSetup(
        data=args.data, tgt_data=args.tgt_data, corpus=args.corpus, tokenizer=args.tokenizer,
        vocab_size=args.vocab_size, preset=args.preset, batch_size=args.batch_size, align_data=args.align,
        guided_alignment=args.guided_alignment, seed=args.seed,
    )
    config = paper_train_config(
        out_dir=args.out, steps=args.steps, lr=args.lr, warmup_steps=args.warmup, eval_every=args.eval_every,
        bf16=args.bf16, device=args.device, seed=args.seed, progress=not args.quiet, max_time_s=max_time_s(args),
    )
    trained = train_translator(setup, config, resume=args.resume)
    if trained.result.interrupted:
        return 130
    print(f"data: {trained.splits.describe()}")
    scores = evaluate_translator(trained.translator, trained.splits.test)
    print(f"test: {scores.summary(trained.result.elapsed_s)}   checkpoint: {args.out}")
    return 0


def run_translate(args) -> int:
    from attnlab.translation import Translator

    translator = Translator.load(args.ckpt, device=args.device)
    lines = args.sentences if args.sentences else sys.stdin.read().splitlines()
    sentences = [" ".join(line.split()) for line in lines if line.strip()]
    skipped = len(lines) - len(sentences)
    if skipped:
        print(f"attnlab: skipped {skipped} empty line(s)", file=sys.stderr)
    for line in translator.translate(sentences, beam_size=args.beam, alpha=args.alpha, batch_size=args.batch_size):
        print(line)
    return 0
