"""``attnlab train lm`` and ``attnlab generate``: thin calls into attnlab.language_model."""

from __future__ import annotations

from attnlab.cli.main import add_command
from attnlab.cli.options import add_run_options, add_threads_option, apply_threads, max_time_s

DEFAULT_STEPS = 2000
UNCAPPED = 10**9  # --max-minutes without --steps: the budget alone sets the schedule's length
TRAIN_EXAMPLES = """  attnlab train lm                                   # Python stdlib source, char-level GPT
  attnlab train lm --max-minutes 10 --bf16 --out runs/lm
  attnlab train lm --data my_texts/ --tokenizer bpe --vocab-size 8000 --out runs/mine
  attnlab train lm --out runs/lm --resume              # continue a run
"""

GENERATE_EXAMPLES = """  attnlab generate --ckpt runs/lm --prompt "def fib(n):"
  attnlab generate --ckpt runs/lm --prompt "import " --temperature 0.8 --top-k 20 --max-new-tokens 150
  attnlab generate --ckpt path/to/hf-gpt2-folder --prompt "Hello" --top-p 0.9
"""


def register_train(tasks) -> None:
    p = add_command(tasks, "lm", "train a GPT language model (the Python standard library's source, or your text)", TRAIN_EXAMPLES)
    p.add_argument("--data", help="a text file or a folder of text files (default: the Python standard library)")
    p.add_argument("--tokenizer", default="char", choices=["char", "bpe"], help="characters or byte-level BPE")
    p.add_argument("--vocab-size", type=int, default=4096, help="byte-level BPE vocabulary size")
    p.add_argument("--preset", default="char-small", help="model shape (char-small, char-base, gpt2-124m, tiny)")
    p.add_argument("--context", type=int, help="training window in tokens (default: the preset's context)")
    p.add_argument("--out", default="runs/lm", help="checkpoint folder")
    p.add_argument("--steps", type=int, help="updates (default: 2000, or as many as fit in --max-minutes; "
                   "--resume: the run's own)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=6e-3, help="peak learning rate (cosine schedule)")
    p.add_argument("--warmup", type=int, default=50, help="warm-up updates")
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--eval-every", type=int, default=250, help="validate every N updates (0: at the end)")
    p.add_argument("--max-chars", type=int, help="use at most this many characters of each split")
    add_run_options(p)
    p.set_defaults(func=run_train)


def register(commands) -> None:
    p = add_command(commands, "generate", "continue a prompt with a trained GPT, streaming tokens", GENERATE_EXAMPLES)
    p.add_argument("--ckpt", required=True, help="checkpoint folder (attnlab train lm, or a HuggingFace GPT-2 folder)")
    p.add_argument("--prompt", required=True, help="the text to continue")
    p.add_argument("--max-new-tokens", type=int, help="how many tokens to add (default: 200, or what fits the context)")
    p.add_argument("--temperature", type=float, help="sample at this temperature (default: greedy unless --top-k/--top-p)")
    p.add_argument("--top-k", type=int, help="sample among the k most likely tokens")
    p.add_argument("--top-p", type=float, help="sample from the smallest set of tokens with this much probability")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--device", default="cpu")
    add_threads_option(p)
    p.set_defaults(func=run_generate)


def run_train(args) -> int:
    from attnlab.language_model import LMSetup, train_lm
    from attnlab.training import TrainConfig

    apply_threads(args)
    setup = LMSetup(
        data=args.data, tokenizer=args.tokenizer, vocab_size=args.vocab_size, preset=args.preset,
        context=args.context, batch_size=args.batch_size, max_chars=args.max_chars, seed=args.seed,
    )
    config = TrainConfig(
        out_dir=args.out, steps=args.steps or (UNCAPPED if args.max_minutes else DEFAULT_STEPS), lr=args.lr, warmup_steps=args.warmup, weight_decay=args.weight_decay,
        betas=(0.9, 0.99), eval_every=args.eval_every, bf16=args.bf16, device=args.device, seed=args.seed,
        progress=not args.quiet, max_time_s=max_time_s(args),
    )
    trained = train_lm(setup, config, resume=args.resume, fit_budget=args.steps is None)
    if trained.result.interrupted:
        return 130
    print(f"data: {trained.data.corpus.describe()}")
    done = f"after {trained.result.step} updates ({trained.result.elapsed_s / 60:.1f} min)   checkpoint: {args.out}"
    final = trained.final_metrics
    if final is None:
        m = trained.result.metrics
        print(f"validation (last evaluation): {m['bits_per_char']:.3f} bits/char | perplexity {m['perplexity']:.3g} {done}")
    else:
        print(
            f"validation, all of it: {final['bits_per_char']:.3f} bits/char (consecutive windows) | "
            f"{final['sliding_bits_per_char']:.3f} bits/char (sliding windows, every character after >= "
            f"{final['sliding_stride']} others) | perplexity {final['perplexity']:.3g} {done}"
        )
    return 0


def run_generate(args) -> int:
    import torch

    from attnlab.language_model import complete, load_lm, print_stream

    apply_threads(args)
    model, tokenizer = load_lm(args.ckpt, device=args.device)
    do_sample = args.temperature is not None or args.top_k is not None or args.top_p is not None
    generator = torch.Generator(device=args.device).manual_seed(args.seed)
    print_stream(args.prompt)
    complete(
        model, tokenizer, args.prompt, args.max_new_tokens, on_text=print_stream, do_sample=do_sample,
        temperature=args.temperature or 1.0, top_k=args.top_k, top_p=args.top_p, generator=generator,
    )
    print()
    return 0
