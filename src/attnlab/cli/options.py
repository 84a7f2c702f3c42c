"""The flags every command shares, and flags -> settings.

    add_train_options(parser, Settings)   --out --overwrite --resume --steps --batch-size --lr
                                          --warmup --weight-decay --dropout --max-minutes
                                          --save-every --bf16 --device --seed --threads --quiet,
                                          defaults read from the app's settings dataclass
    add_run_options(parser)               --device --seed --threads (commands that run a model)
    settings(Settings, args)              the settings dataclass from the parsed flags
    add_command(subparsers, name, ...)    a subcommand whose --help ends with examples
"""

from __future__ import annotations

import argparse
import dataclasses
import sys


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written; a flag's default shown once, when it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS) and "default" not in help
        if shown and action.option_strings:
            help += " (default: %(default)s)"
        return help


def add_command(subparsers, name: str, help: str, examples: str) -> argparse.ArgumentParser:
    """Add a subcommand whose ``--help`` ends with usage examples."""
    return subparsers.add_parser(
        name, help=help, description=help, epilog="examples:\n" + examples, formatter_class=HelpFormatter
    )

TRAIN_HELP = {
    "out": "run folder (an existing run is never replaced without --overwrite)",
    "overwrite": "replace the run in --out",
    "resume": "continue the run in --out",
    "wait": "--out in use by a live run: wait for it to end (default: refuse, naming its PID)",
    "steps": "optimizer updates (default: the task's, or as many as fit in --max-minutes)",
    "batch_size": "global batch size (the same whatever the number of processes)",
    "lr": "peak learning rate",
    "warmup": "warm-up updates",
    "weight_decay": "weight decay",
    "dropout": "dropout probability (default: the preset's)",
    "max_minutes": "time budget of the whole command (start-up, training, final evaluation); without --steps it "
                   "sizes the schedule",
    "save_every": "checkpoint every N updates (0: only at the end, on Ctrl-C/SIGTERM and at the budget)",
    "bf16": "bf16 autocast (fast on CPUs with AMX)",
    "shard": "several processes: shard the model with FSDP2 (sharded checkpoints) instead of replicating it (DDP)",
    "rank_logs": "several processes: every rank's progress in --out/logs/rank<r>.log",
}
PROCESS_FLAGS = ("shard", "rank_logs")


def _default(cls, name: str):
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    return field.default


def add_train_options(parser: argparse.ArgumentParser, cls, *, skip: tuple[str, ...] = (),
                      processes: bool = True, out: str | None = None) -> None:
    """The shared training flags, with the defaults of ``cls`` (an app's settings dataclass);
    ``processes``: also ``--nproc --shard --rank-logs`` (commands that train over processes);
    ``out``: the command's own help for ``--out`` (what the folder holds)."""
    group = parser.add_argument_group("run")
    for name, help in TRAIN_HELP.items():
        if name in skip or (not processes and name in PROCESS_FLAGS):
            continue
        flag = "--" + name.replace("_", "-")
        default = _default(cls, name)
        if isinstance(default, bool):
            group.add_argument(flag, action="store_true", help=help)
        else:
            kind = {"steps": int, "batch_size": int, "warmup": int, "save_every": int}.get(name, float)
            help = out if name == "out" and out else help
            group.add_argument(flag, type=str if name == "out" else kind, default=default, help=help)
    group.add_argument("--quiet", action="store_true", help="no progress bar")
    if "max_minutes" not in skip:
        group.add_argument("--minutes", type=float, metavar="MAX_MINUTES",
                           help="deprecated alias of --max-minutes (removed in the next release)")
    if processes:
        group.add_argument("--nproc", type=int, metavar="N",
                           help="train over N processes on this machine: runs this command under torchrun's own "
                                "launcher (torch.distributed.run --standalone --nproc-per-node N); see docs/distributed.md")
    add_run_options(group, seed=_default(cls, "seed"))


def add_run_options(parser, *, seed: int = 0) -> None:
    """``--device --seed --threads``: every command that runs a model has them."""
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--seed", type=int, default=seed, help="random seed (same seed, same run)")
    parser.add_argument("--threads", type=threads_flag, metavar="N|auto",
                        help="torch CPU threads (default: torch's own, OMP_NUM_THREADS or the physical cores, so the "
                             "same seed gives the same run; auto: the cores other work leaves free now, faster on a "
                             "busy machine but the last bits then depend on the load; a --max-minutes run takes auto, "
                             "--resume the run's own count)")


def threads_flag(text: str) -> int:
    """``--threads``: an integer >= 1, or ``auto`` (0: the cores other work leaves free)."""
    if text == "auto":
        return 0
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 or 'auto', got {text!r}")
    return value


def settings(cls, args: argparse.Namespace):
    """The settings dataclass ``cls`` from the parsed flags (``--quiet`` -> ``progress``;
    the deprecated ``--minutes`` -> ``max_minutes``, with a warning)."""
    values = dict(vars(args))
    values["progress"] = not values.pop("quiet", False)
    minutes = values.pop("minutes", None)
    if minutes is not None:
        print("attnlab: warning: --minutes is deprecated and will be removed in the next release; "
              "use --max-minutes", file=sys.stderr)
        values["max_minutes"] = minutes
    from attnlab.apps.common import settings_from

    return settings_from(cls, values)


def runtime(args: argparse.Namespace) -> None:
    """Threads for commands that run a model (training apps set their own); ``auto`` becomes
    the count it chose, which ONNX Runtime then uses too."""
    from attnlab.apps.commands import threads as apply_threads

    requested = getattr(args, "threads", None)
    threads = apply_threads(requested)
    if requested == 0:
        args.threads = threads


def device(args: argparse.Namespace) -> str:
    """``--device`` resolved (``auto`` -> ``cuda`` or ``cpu``), after :func:`runtime`."""
    from attnlab.apps.commands import device as resolve

    return resolve(args.device)
