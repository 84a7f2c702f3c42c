"""``attnlab train lm`` and ``attnlab generate``: flags -> :mod:`attnlab.apps.lm`."""

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

TRAIN_EXAMPLES = """  attnlab train lm                                   # Python stdlib source, char-level GPT
  attnlab train lm --max-minutes 10 --bf16 --out runs/lm
  attnlab train lm --data my_texts/ --tokenizer bpe --vocab-size 8000 --out runs/mine
  attnlab train lm --out runs/lm --resume              # continue a run
"""
GENERATE_EXAMPLES = """  attnlab generate --ckpt runs/lm "def fib(n):"
  attnlab generate --ckpt runs/lm --prompt "def fib(n):"                   # the same
  attnlab generate --ckpt runs/lm --prompt "import " --temperature 0.8 --top-k 20 --max-new-tokens 150
  attnlab generate --ckpt path/to/hf-gpt2-folder --prompt "Hello" --top-p 0.9
"""
TASKS = {"lm": "train a GPT language model (the Python standard library's source, or your text)"}
COMMANDS = {"generate": "continue a prompt with a trained GPT, streaming tokens"}


def register_train(tasks) -> None:
    from attnlab.apps import lm

    p = add_command(tasks, "lm", TASKS["lm"], TRAIN_EXAMPLES)
    p.add_argument("--data", help="a text file or a folder of text files (default: the Python standard library)")
    p.add_argument("--tokenizer", default="char", choices=["char", "bpe"], help="characters or byte-level BPE")
    p.add_argument("--vocab-size", type=int, default=4096, help="byte-level BPE vocabulary size")
    p.add_argument("--preset", default="char-small", help="model shape (char-small, char-base, gpt2-124m, tiny)")
    p.add_argument("--context", type=int, help="training window in tokens (default: the preset's context)")
    p.add_argument("--eval-every", type=int, default=250, help="validate every N updates (0: at the end)")
    p.add_argument("--max-chars", type=int, help="use at most this many characters of each split")
    p.add_argument("--final-eval", choices=["full", "quick", "none"],
                   help="after training: every validation window (full), the training-time sample (quick) "
                        "or none; default full, quick with --max-minutes")
    add_train_options(p, lm.LMSettings)
    p.set_defaults(func=run_train)


def register(commands) -> None:
    from attnlab.apps.lm import MAX_NEW_TOKENS

    p = add_command(commands, "generate", COMMANDS["generate"], GENERATE_EXAMPLES)
    p.add_argument("text", nargs="?", help="the text to continue (or --prompt)")
    p.add_argument("--prompt", help="the text to continue (the same as the positional text)")
    p.add_argument("--ckpt", required=True, help="checkpoint folder (attnlab train lm, or a HuggingFace GPT-2 folder)")
    p.add_argument("--max-new-tokens", type=int, metavar="N",
                   help=f"how many tokens to add, 1..{MAX_NEW_TOKENS:,} (default: 200, or what fits the context)")
    p.add_argument("--temperature", type=float, help="sample at this temperature (default: greedy unless --top-k/--top-p)")
    p.add_argument("--top-k", type=int, help="sample among the k most likely tokens")
    p.add_argument("--top-p", type=float, help="sample from the smallest set of tokens with this much probability")
    add_run_options(p)
    add_runtime_option(p)
    p.set_defaults(func=run_generate)


def run_train(args) -> int:
    from attnlab.apps import lm

    trained = lm.train(settings(lm.LMSettings, args))
    if trained.result.interrupted:
        return trained.result.exit_code  # 130 after Ctrl-C, 143 after SIGTERM
    print(f"data: {trained.data.corpus.describe()}")
    done = f"after {trained.result.step} updates ({trained.result.elapsed_s / 60:.1f} min)   checkpoint: {args.out}"
    final = trained.final_metrics
    if final is None:
        m = trained.result.metrics
        print(f"validation ({trained.eval_windows} windows of the validation text; --final-eval full for all of it): "
              f"{m['bits_per_char']:.3f} bits/char | perplexity {m['perplexity']:.3g} {done}")
    else:
        print(
            f"validation, all of it: {final['bits_per_char']:.3f} bits/char (consecutive windows) | "
            f"{final['sliding_bits_per_char']:.3f} bits/char (sliding windows, every character after >= "
            f"{final['sliding_stride']} others) | perplexity {final['perplexity']:.3g} {done}"
        )
    return 0


def run_generate(args) -> int:
    from attnlab.apps import lm
    from attnlab.errors import AttnlabError

    if (args.text is None) == (args.prompt is None):
        raise AttnlabError("generate: give the text to continue once: as an argument or as --prompt")
    prompt = args.text if args.text is not None else args.prompt
    runtime(args)
    if args.runtime == "onnx":  # an `attnlab export` folder in ONNX Runtime: same loop, same output
        model = load_onnx(args, ("gpt2",), "a GPT")
        model, tokenizer, where = model, model.tokenizer, "cpu"
    else:
        where = device(args)
        model, tokenizer = lm.load(args.ckpt, device=where)
    do_sample = args.temperature is not None or args.top_k is not None or args.top_p is not None
    lm.complete(
        model, tokenizer, prompt, args.max_new_tokens, on_text=lm.print_stream, echo=True, do_sample=do_sample,
        temperature=args.temperature if args.temperature is not None else 1.0, top_k=args.top_k, top_p=args.top_p,
        generator=lm.generator(where, args.seed),
    )
    print()
    return 0
