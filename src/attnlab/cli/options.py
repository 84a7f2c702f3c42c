"""Options every ``attnlab train TASK`` shares, and what they set up.

    add_run_options(parser)          --max-minutes --bf16 --device --seed --resume --quiet --threads
    apply_threads(args)              torch threads from --threads (default: choose_threads())
    max_time_s(args)                 --max-minutes in seconds, or None
    add_guided_alignment_options(p)  --align --guided-alignment (translation tasks)
"""

from __future__ import annotations


def add_run_options(parser, *, precision: bool = True) -> None:
    """The run options; ``precision=False`` leaves out --bf16 and --device (CPU-only tasks)."""
    parser.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this much training time")
    if precision:
        parser.add_argument("--bf16", action="store_true", help="bf16 autocast (fast on CPUs with AMX)")
        parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_option(parser)


def add_guided_alignment_options(parser) -> None:
    """Gold word alignments of user data and the weight of guided alignment training."""
    parser.add_argument("--align", metavar="FILE",
                        help="Pharaoh word alignments of --data ('0-0 2-1 ...' per pair), for --guided-alignment")
    parser.add_argument("--guided-alignment", type=float, default=0.0, metavar="W",
                        help="train the attention towards the gold alignments with weight W (0: off; "
                             "needs alignments: the synthetic corpus, --align, or {split}.align files)")


def add_threads_option(parser) -> None:
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: all cores, or 1 when the machine is busy)")


def apply_threads(args) -> None:
    import torch

    from attnlab.training.threads import choose_threads

    torch.set_num_threads(max(args.threads, 1) if getattr(args, "threads", None) else choose_threads())


def max_time_s(args) -> float | None:
    return None if args.max_minutes is None else args.max_minutes * 60
