"""``attnlab train seq2seq``: the RNN translator with any attention, a thin call into
:func:`attnlab.translation.train_translator` with ``model="seq2seq"``."""

from __future__ import annotations

import dataclasses

from attnlab.cli.main import add_command
from attnlab.cli.options import (
    add_guided_alignment_options,
    add_run_options,
    apply_threads,
    max_time_s,
)
from attnlab.models.seq2seq_attention import ATTENTION_NAMES

EXAMPLES = """  attnlab train seq2seq                                   # Bahdanau attention, synthetic corpus
  attnlab train seq2seq --attention location --steps 600 --out runs/location
  attnlab train seq2seq --attention none --out runs/no-attention        # the fixed-context baseline
  attnlab train seq2seq --attention luong-general --style luong --cell lstm
  attnlab train seq2seq --data pairs.tsv --tokenizer bpe --out runs/mine
  attnlab train seq2seq --guided-alignment 1 --out runs/guided          # attention trained on the gold alignments
  attnlab train seq2seq --data pairs.tsv --align pairs.align --guided-alignment 1 --out runs/mine-guided
  attnlab train seq2seq --out runs/mine --resume                        # continue a run
"""


def register_train(tasks) -> None:
    p = add_command(tasks, "seq2seq", "train an RNN encoder-decoder translator with a chosen attention", EXAMPLES)
    p.add_argument("--attention", default="bahdanau", choices=ATTENTION_NAMES, help="the decoder's attention")
    p.add_argument("--style", default="luong", choices=["luong", "bahdanau"],
                   help="attention after the RNN step with input feeding (luong) or before it (bahdanau)")
    p.add_argument("--no-input-feeding", action="store_true", help="luong style: do not feed a_{t-1} to the next step")
    p.add_argument("--cell", default="gru", choices=["gru", "lstm"])
    p.add_argument("--preset", default="compact", help="model size (tiny, compact, small, base)")
    p.add_argument("--data", help="TSV of source<TAB>target, a folder of {train,valid,test}.tsv, or a source text file")
    p.add_argument("--tgt-data", help="target text file, line-aligned with --data")
    p.add_argument("--corpus", default="default", help="synthetic corpus preset without --data (tiny, default, hard)")
    p.add_argument("--tokenizer", default="word", choices=["word", "bpe"])
    p.add_argument("--vocab-size", type=int, default=8000, help="BPE vocabulary size (word: upper bound)")
    p.add_argument("--out", default="runs/seq2seq", help="checkpoint folder")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (cosine decay)")
    p.add_argument("--eval-every", type=int, default=0, help="validation BLEU every N updates (0: at the end)")
    add_guided_alignment_options(p)
    add_run_options(p, precision=False)
    p.set_defaults(func=run_train)


def run_train(args) -> int:
    from attnlab.translation import (
        TranslatorSetup,
        evaluate_translator,
        rnn_train_config,
        train_translator,
    )

    apply_threads(args)
    setup = TranslatorSetup(model="seq2seq",
        data=args.data, tgt_data=args.tgt_data, corpus=args.corpus, tokenizer=args.tokenizer,
        vocab_size=args.vocab_size, preset=args.preset, attention=args.attention, batch_size=args.batch_size,
        model_overrides={"attention_style": args.style, "cell": args.cell, "input_feeding": not args.no_input_feeding},
        align_data=args.align, guided_alignment=args.guided_alignment, seed=args.seed,
    )
    config = rnn_train_config(
        out_dir=args.out, steps=args.steps, lr=args.lr, eval_every=args.eval_every, seed=args.seed,
        progress=not args.quiet, max_time_s=max_time_s(args),
    )
    trained = train_translator(setup, config, resume=args.resume)
    if trained.result.interrupted:
        return 130
    test = trained.splits.test
    if args.attention == "none" and test.alignments is not None:  # no attention: nothing to align
        test = dataclasses.replace(test, alignments=None)
    scores = evaluate_translator(trained.translator, test)
    print(f"data: {trained.splits.describe()}")
    print(f"test: {scores.summary(trained.result.elapsed_s)}   checkpoint: {args.out}")
    return 0
