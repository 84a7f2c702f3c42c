"""``attnlab train mlm``, ``attnlab train classify``, ``attnlab fill-mask``: BERT on text.

Thin calls into :mod:`attnlab.models.bert`, :mod:`attnlab.data.mlm` and the Trainer.
The embedded default text is the Python standard library's source (a document per
file, split into training and validation *by file*); the default classification task
tells a line of code from a line of prose (comment or docstring) in that source.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from attnlab.cli.main import add_command
from attnlab.cli.options import add_run_options, apply_threads, max_time_s
from attnlab.errors import AttnlabError

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


# --- shared by the train commands of BERT and ViT --------------------------------------
def add_training_args(p, *, out: str, steps: int, batch_size: int, lr: float) -> None:
    p.add_argument("--out", default=out, help="checkpoint folder")
    p.add_argument("--steps", type=int, default=steps, help="optimizer updates")
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr, help="peak learning rate (warm-up, then cosine)")
    p.add_argument("--warmup", type=int, default=100, help="warm-up updates")
    p.add_argument("--weight-decay", type=float, default=0.01)
    add_run_options(p)


def train_config(args, eval_every: int = 0):
    from attnlab.training import TrainConfig

    apply_threads(args)
    return TrainConfig(
        out_dir=args.out, steps=args.steps, lr=args.lr, warmup_steps=min(args.warmup, args.steps // 5),
        weight_decay=args.weight_decay, eval_every=eval_every, bf16=args.bf16, device=args.device,
        seed=args.seed, progress=not args.quiet, max_time_s=max_time_s(args),
    )


def check_resume(args) -> None:
    if args.resume and not (Path(args.out) / "config.json").is_file():
        raise AttnlabError(f"--resume: no checkpoint in {args.out}; train without --resume first")


# --- commands -----------------------------------------------------------------------------------
def register_train(tasks) -> None:
    p = add_command(tasks, "mlm", "pre-train BERT (masked LM + next sentence) on text", MLM_EXAMPLES)
    p.add_argument("--data", help="a text file: one sentence per line, blank lines between documents "
                   "(default: the Python standard library's source)")
    p.add_argument("--preset", default="small", help="model shape: tiny, small, base")
    p.add_argument("--vocab-size", type=int, default=4000, help="WordPiece vocabulary size")
    p.add_argument("--max-len", type=int, default=64, help="tokens per sentence pair")
    p.add_argument("--max-files", type=int, default=400, help="standard library files to read (default data)")
    add_training_args(p, out="runs/mlm", steps=1500, batch_size=32, lr=1e-3)
    p.set_defaults(func=run_mlm)

    p = add_command(tasks, "classify", "fine-tune a pre-trained BERT to classify text", CLASSIFY_EXAMPLES)
    p.add_argument("--ckpt", default="runs/mlm", help="pre-trained BERT folder (attnlab train mlm, or HuggingFace's)")
    p.add_argument("--data", help="TSV file of text<TAB>label lines; 10%% held out for testing "
                   "(default: code vs prose lines of the standard library)")
    p.add_argument("--max-len", type=int, default=64, help="tokens per text")
    p.add_argument("--max-examples", type=int, default=6000, help="training examples of the default task")
    add_training_args(p, out="runs/classify", steps=400, batch_size=32, lr=5e-4)
    p.set_defaults(func=run_classify)


def register(commands) -> None:
    p = add_command(commands, "fill-mask", "predict the [MASK] tokens of a text with a BERT", FILL_EXAMPLES)
    p.add_argument("text", help="text with one or more [MASK] tokens")
    p.add_argument("--ckpt", required=True, help="BERT folder with an MLM head and its tokenizer")
    p.add_argument("--top-k", type=int, default=5)
    p.set_defaults(func=run_fill_mask)


def run_training(args, work, evaluations: int) -> int:
    """``work(args, TrainConfig) -> (TrainResult, summary)``, then one line of results."""
    check_resume(args)
    result, summary = work(args, train_config(args, eval_every=max(args.steps // evaluations, 1)))
    if result.interrupted:
        return 130
    print(f"{summary} after {result.step} updates ({result.elapsed_s / 60:.1f} min)   checkpoint: {args.out}")
    return 0


def run_mlm(args) -> int:
    from attnlab.cli.bert_tasks import pretrain

    return run_training(args, pretrain, evaluations=5)


def run_classify(args) -> int:
    from attnlab.cli.bert_tasks import finetune

    return run_training(args, finetune, evaluations=4)


def load_bert(ckpt: str | Path):
    """A BERT checkpoint folder and the tokenizer saved with it."""
    from attnlab.data.tokenizer import Tokenizer
    from attnlab.data.wordpiece import VOCAB_FILE, WordPieceTokenizer
    from attnlab.io import read_json
    from attnlab.models.bert import BERT

    ckpt = Path(ckpt)
    if not ckpt.is_dir():
        raise AttnlabError(f"--ckpt {ckpt}: checkpoint folder not found")
    model = BERT.from_pretrained(ckpt)
    config = read_json(ckpt / "tokenizer_config.json") if (ckpt / "tokenizer_config.json").is_file() else {}
    if isinstance(config, dict) and "kind" in config:
        return model, Tokenizer.load(ckpt)
    if (ckpt / VOCAB_FILE).is_file():  # a HuggingFace BERT folder
        return model, WordPieceTokenizer.from_vocab_file(ckpt / VOCAB_FILE, lowercase=config.get("do_lower_case", True))
    raise AttnlabError(f"--ckpt {ckpt}: no tokenizer in the folder (attnlab's files or a vocab.txt)")


def run_fill_mask(args) -> int:
    from attnlab.models.bert import fill_mask

    model, tokenizer = load_bert(args.ckpt)
    for n, candidates in enumerate(fill_mask(model, tokenizer, args.text, args.top_k)):
        shown = "  ".join(f"{token} {p:.3f}" for token, p in candidates)
        print(f"[MASK] {n + 1}: {shown}")
    return 0


def view_bert(ckpt: Path, inputs: list[str], out: Path) -> Path:
    """``attnlab viz`` for BERT: every head of every layer on one text, tokens on the axes."""
    from attnlab.viz.rollout import layer_head_grid, write_png

    model, tokenizer = load_bert(ckpt)
    text = inputs[0] if inputs else "the function returns a sorted list of the keys"
    ids = [tokenizer.cls_id, *tokenizer.encode(text), tokenizer.sep_id][: model.config.max_positions]
    with torch.no_grad():
        attentions = model(torch.tensor([ids]), need_weights=True).attentions
    tokens = [tokenizer.id_to_token(i) for i in ids]
    path = out / "bert_attention.png" if out.suffix.lower() != ".png" else out
    return write_png(layer_head_grid(torch.stack([a[0] for a in attentions]), tokens), path)


def split_tsv(path: str | Path, seed: int, test_fraction: float = 0.1) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``text<TAB>label`` lines, shuffled by ``seed`` and split into train and test."""
    path = Path(path)
    if not path.is_file():
        raise AttnlabError(f"--data {path}: file not found")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rsplit("\t", 1)
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise AttnlabError(f"--data {path}:{n}: expected 'text<TAB>label', got {line[:60]!r}")
        rows.append((parts[0].strip(), parts[1].strip()))
    if len({label for _, label in rows}) < 2 or len(rows) < 10:
        raise AttnlabError(f"--data {path}: need at least 10 lines and 2 different labels")
    random.Random(seed).shuffle(rows)
    cut = max(1, round(len(rows) * test_fraction))
    return rows[cut:], rows[:cut]
