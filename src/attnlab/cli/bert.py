"""``attnlab train mlm``, ``attnlab train classify``, ``attnlab fill-mask``: flags -> :mod:`attnlab.apps.bert`."""

from __future__ import annotations

from attnlab.cli.export import add_runtime_option, load_onnx
from attnlab.cli.options import (
    add_command,
    add_run_options,
    add_train_options,
    device,
    runtime,
    settings,
)

MLM_EXAMPLES = """  attnlab train mlm                                  # pre-train on the Python standard library
  attnlab train mlm --data docs.txt --out runs/mine   # blank lines between documents
  attnlab train mlm --out runs/mlm --resume --steps 4000
"""
CLASSIFY_EXAMPLES = """  attnlab train classify --ckpt runs/mlm            # code line vs comment/docstring
  attnlab train classify --ckpt runs/mlm --data reviews.tsv --out runs/reviews   # text<TAB>label lines
"""
FILL_EXAMPLES = """  attnlab fill-mask --ckpt runs/mlm "return the [MASK] of the list"
  attnlab fill-mask --ckpt runs/mlm --top-k 10 "raise a [MASK] error"
"""


TASKS = {"mlm": "pre-train BERT (masked LM + next sentence) on text",
         "classify": "fine-tune a pre-trained BERT to classify text"}
COMMANDS = {"fill-mask": "predict the [MASK] tokens of a text with a BERT"}


def register_train(tasks) -> None:
    from attnlab.apps import bert

    p = add_command(tasks, "mlm", TASKS["mlm"], MLM_EXAMPLES)
    p.add_argument("--data", help="a text file: one sentence per line, blank lines between documents "
                   "(default: the Python standard library's source)")
    p.add_argument("--preset", default="small", help="model shape: tiny, small, base")
    p.add_argument("--vocab-size", type=int, default=4000, help="WordPiece vocabulary size")
    p.add_argument("--max-len", type=int, default=64, help="tokens per sentence pair")
    p.add_argument("--max-files", type=int, default=400, help="standard library files to read (default data)")
    add_train_options(p, bert.MLMSettings)
    p.set_defaults(func=run_mlm)

    p = add_command(tasks, "classify", TASKS["classify"], CLASSIFY_EXAMPLES)
    p.add_argument("--ckpt", default="runs/mlm", help="pre-trained BERT folder (attnlab train mlm, or HuggingFace's)")
    p.add_argument("--data", help="TSV file of text<TAB>label lines; 10%% held out for testing "
                   "(default: code vs prose lines of the standard library)")
    p.add_argument("--max-len", type=int, default=64, help="tokens per text")
    p.add_argument("--max-examples", type=int, default=6000, help="training examples of the default task")
    add_train_options(p, bert.ClassifySettings)
    p.set_defaults(func=run_classify)


def register(commands) -> None:
    p = add_command(commands, "fill-mask", COMMANDS["fill-mask"], FILL_EXAMPLES)
    p.add_argument("text", help="text with one or more [MASK] tokens")
    p.add_argument("--ckpt", required=True, help="BERT folder with an MLM head and its tokenizer")
    p.add_argument("--top-k", type=int, default=5, metavar="K", help="candidates shown per [MASK]")
    add_run_options(p)
    add_runtime_option(p)
    p.set_defaults(func=run_fill_mask)


def _report(trained, out: str) -> int:
    if trained.result.interrupted:
        return trained.result.exit_code  # 130 after Ctrl-C, 143 after SIGTERM
    print(f"{trained.summary} after {trained.result.step} updates ({trained.result.elapsed_s / 60:.1f} min)   "
          f"checkpoint: {out}")
    return 0


def run_mlm(args) -> int:
    from attnlab.apps import bert

    return _report(bert.pretrain(settings(bert.MLMSettings, args)), args.out)


def run_classify(args) -> int:
    from attnlab.apps import bert

    return _report(bert.finetune(settings(bert.ClassifySettings, args)), args.out)


def run_fill_mask(args) -> int:
    from attnlab.apps import bert

    runtime(args)
    if args.runtime == "onnx":  # an `attnlab export` folder in ONNX Runtime
        predictions = load_onnx(args, ("bert",), "a BERT").fill_mask(args.text, args.top_k)
    else:
        model, tokenizer = bert.load(args.ckpt, device=device(args))
        predictions = bert.fill_mask(model, tokenizer, args.text, args.top_k)
    for n, candidates in enumerate(predictions):
        shown = "  ".join(f"{token} {p:.3f}" for token, p in candidates)
        print(f"[MASK] {n + 1}: {shown}")
    return 0
