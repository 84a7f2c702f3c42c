"""``attnlab train translate``, ``attnlab train seq2seq`` and ``attnlab translate``: flags ->
:class:`attnlab.apps.translate.TranslateSettings` -> one app call."""

from __future__ import annotations

import argparse
import sys

from attnlab.cli.export import add_runtime_option, load_onnx
from attnlab.cli.options import (
    add_command,
    add_run_options,
    add_train_options,
    device,
    runtime,
    settings,
)

TRAIN_EXAMPLES = """  attnlab train translate                                  # synthetic corpus, small preset
  attnlab train translate --steps 200 --out runs/quick
  attnlab train translate --data pairs.tsv --tokenizer bpe --vocab-size 8000 --out runs/mine
  attnlab train translate --data train.en --tgt-data train.de --preset base --bf16
  attnlab train translate --data pairs.tsv --align pairs.align --guided-alignment 1 --out runs/aligned
  attnlab train translate --data gettext:zh_CN --max-minutes 10 --out runs/zh    # English -> Chinese UI messages
  attnlab train translate --data gettext:fr --catalogs ~/src/myapp/po --out runs/fr
  attnlab train translate --out runs/mine --resume                      # continue a run
"""
SEQ2SEQ_EXAMPLES = """  attnlab train seq2seq                                   # Bahdanau attention, synthetic corpus
  attnlab train seq2seq --attention location --steps 600 --out runs/location
  attnlab train seq2seq --attention none --out runs/no-attention        # the fixed-context baseline
  attnlab train seq2seq --attention luong-general --style luong --cell lstm
  attnlab train seq2seq --guided-alignment 1 --out runs/guided          # attention trained on the gold alignments
  attnlab train seq2seq --data gettext:de --max-minutes 10 --out runs/de-rnn
  attnlab train seq2seq --out runs/mine --resume                        # continue a run
"""
TRANSLATE_EXAMPLES = """  attnlab translate --ckpt runs/demo/model "the small cat sees a dog ."
  attnlab translate --ckpt runs/demo/model --beam 4 < sentences.txt
  attnlab translate --ckpt runs/zh "Open file" "Could not open %s"
  cut -f1 messages.tsv | attnlab translate --ckpt runs/fr > french.txt   # one translation per line
  attnlab translate --ckpt runs/fr --po po/myapp.pot --out po/fr.po      # fill a catalog (entries marked fuzzy)
"""


def _data_options(p) -> None:
    p.add_argument("--data", help="TSV of source<TAB>target, a folder of {train,valid,test}.tsv, a source text file, "
                   "or gettext:LANG (English -> LANG from the gettext catalogs on this machine, e.g. gettext:zh_CN)")
    p.add_argument("--tgt-data", help="target text file, line-aligned with --data")
    p.add_argument("--catalogs", nargs="+", metavar="PATH",
                   help="with --data gettext:LANG: more .po/.mo files or folders of them")
    p.add_argument("--corpus", default="default", help="synthetic corpus preset without --data (tiny, default, hard)")
    p.add_argument("--tokenizer", choices=["word", "bpe", "byte_bpe"],
                   help="default: byte_bpe for gettext:LANG (no unknown tokens, placeholders whole), else word")
    p.add_argument("--vocab-size", type=int, default=8000, help="BPE vocabulary size (word: upper bound)")
    p.add_argument("--eval-every", type=int, default=0, help="validate every N updates (0: at the end)")
    p.add_argument("--align", metavar="FILE",
                   help="Pharaoh word alignments of --data ('0-0 2-1 ...' per pair), for --guided-alignment")
    p.add_argument("--guided-alignment", type=float, default=0.0, metavar="W",
                   help="train the attention towards the gold alignments with weight W (0: off)")
    p.add_argument("--beam", type=int, default=4, help="beam size of the final test decoding (1: greedy)")
    p.add_argument("--shared-vocab", action=argparse.BooleanOptionalAction, default=None,
                   help="one joint vocabulary, tied embeddings (default: on for gettext data)")
    p.add_argument("--copy-attention", action="store_true",
                   help="mix a copy of the attended source tokens into the output (pointer-generator; needs the "
                        "joint vocabulary): names, options and acronyms kept as they are")
    p.add_argument("--max-tokens", type=int, metavar="N",
                   help="batches of up to N padded tokens instead of --batch-size pairs (default: 1024 for gettext "
                        "data; 0: off)")
    p.add_argument("--token-dropout", type=float, metavar="P", help="replace source tokens by <unk> with probability P")
    p.add_argument("--average-last", type=int, metavar="N", help="final weights: the mean of the last N saves")
    p.add_argument("--fp32", action="store_true",
                   help="train in fp32 where the gettext recipe uses bf16 autocast (the Transformer on gettext:LANG)")


TASKS = {"translate": "train a Transformer translator (synthetic corpus or your parallel text)",
         "seq2seq": "train an RNN encoder-decoder translator with a chosen attention"}
COMMANDS = {"translate": "translate sentences with a trained translator"}


def register_train(tasks) -> None:
    from attnlab.apps import translate
    from attnlab.apps.commands import seq2seq_attentions

    p = add_command(tasks, "translate", TASKS["translate"], TRAIN_EXAMPLES)
    _data_options(p)
    p.add_argument("--preset", default="small", help="model preset (tiny, small, base, big)")
    add_train_options(p, translate.TranslateSettings)
    p.set_defaults(func=run_train, model="transformer", steps=None)  # --lr: the recipe's for gettext data, else 1e-3

    p = add_command(tasks, "seq2seq", TASKS["seq2seq"], SEQ2SEQ_EXAMPLES)
    p.add_argument("--attention", default="bahdanau", choices=seq2seq_attentions(), help="the decoder's attention")
    p.add_argument("--style", default="luong", choices=["luong", "bahdanau"],
                   help="attention after the RNN step with input feeding (luong) or before it (bahdanau)")
    p.add_argument("--no-input-feeding", dest="input_feeding", action="store_false", default=argparse.SUPPRESS,
                   help="luong style: do not feed a_{t-1} to the next step (default: fed)")
    p.add_argument("--cell", default="gru", choices=["gru", "lstm"], help="the recurrent cell of encoder and decoder")
    p.add_argument("--preset", default="compact", help="model size (tiny, compact, small, base)")
    _data_options(p)
    add_train_options(p, translate.TranslateSettings)
    p.set_defaults(func=run_train, model="seq2seq", lr=3e-3, out="runs/seq2seq", warmup=100)


def register(commands) -> None:
    from attnlab.apps.translate import MAX_BATCH, MAX_BEAM

    p = add_command(commands, "translate", COMMANDS["translate"], TRANSLATE_EXAMPLES)
    p.add_argument("sentences", nargs="*", help="sentences to translate (default: lines on stdin)")
    p.add_argument("--ckpt", required=True, help="translator checkpoint folder")
    p.add_argument("--beam", type=int, default=4, metavar="N", help=f"beam size, 1..{MAX_BEAM} (1: greedy)")
    p.add_argument("--alpha", type=float, default=0.6, help="length penalty exponent of beam search")
    p.add_argument("--batch-size", type=int, default=64, help=f"sentences decoded together, 1..{MAX_BATCH}")
    p.add_argument("--po", metavar="IN.po|IN.pot",
                   help="fill the untranslated entries of this gettext catalog (marked fuzzy) into --out")
    p.add_argument("--out", metavar="OUT.po", help="with --po: the filled catalog (written atomically)")
    p.add_argument("--language", help="with --po: the target language of a template without Plural-Forms "
                   "(default: the checkpoint's gettext:LANG)")
    add_run_options(p)
    add_runtime_option(p)
    p.set_defaults(func=run_translate)


def run_train(args) -> int:
    from attnlab.apps import translate

    run = translate.train(settings(translate.TranslateSettings, args))
    if run.scores is None:
        return run.trained.result.exit_code  # 130 after Ctrl-C, 143 after SIGTERM
    print(f"data: {run.trained.splits.describe()}")
    print(f"test: {run.scores.summary(run.trained.result.elapsed_s)}   checkpoint: {args.out}")
    note = run.undertrained_note()
    if note:
        print(f"attnlab: {note}", file=sys.stderr)
    if run.real_scores is not None:
        print(f"test: {run.real_scores.summary()}")
    return 0


def run_translate(args) -> int:
    from attnlab.apps import translate
    from attnlab.errors import AttnlabError

    translate.check_search(beam=args.beam, batch_size=args.batch_size)  # before any work: a typo cannot hang
    runtime(args)
    if (args.po is None) != (args.out is None):
        raise AttnlabError("--po and --out go together: the catalog to fill and where to write it")
    if args.po is not None and args.sentences:
        raise AttnlabError("--po: translates the catalog's messages; give no sentences with it")
    if args.runtime == "onnx":  # an `attnlab export` folder in ONNX Runtime: same search, same output
        translator = load_onnx(args, ("transformer", "seq2seq"), "a translator")
    else:
        translator = translate.load(args.ckpt, device=device(args))
    search = {"beam_size": args.beam, "alpha": args.alpha, "batch_size": args.batch_size}
    if args.po is not None:
        report = translate.fill_po(translator, args.po, args.out,
                                   language=args.language or translate.checkpoint_language(args.ckpt), **search)
        for message in report.refused_messages[:10]:
            print(f"attnlab: refused (placeholders not kept): {message!r}", file=sys.stderr)
        if report.charset_changed:
            print(f"attnlab: {args.out}: charset {report.charset}: a translation did not fit the old one",
                  file=sys.stderr)
        print(report.line())
        return 0
    empty = refused = answered = blank = 0
    for lines in ([args.sentences] if args.sentences else translate.line_batches(sys.stdin, args.batch_size)):
        sentences = [" ".join(line.split()) for line in lines]
        asked = [s for s in sentences if s]
        answers = iter(translate.translate_checked(translator, asked, **search))
        for sentence in sentences:  # one output line per input line: an empty or refused one stays empty
            answer = next(answers) if sentence else ""
            empty += not sentence
            refused += answer is None
            answered += bool(sentence) and answer is not None
            blank += bool(sentence) and answer is not None and not answer.strip()
            print(answer or "", flush=True)
    if empty:
        print(f"attnlab: {empty} empty line(s) left empty", file=sys.stderr)
    if refused:
        print(f"attnlab: {refused} line(s) left empty: their placeholders could not be kept", file=sys.stderr)
    note = translate.undertrained_note(blank, answered, translate.checkpoint_steps(args.ckpt))
    if note:
        print(f"attnlab: {note}", file=sys.stderr)
    return 0
