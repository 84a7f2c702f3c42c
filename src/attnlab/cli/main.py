"""Entry point of the ``attnlab`` command.

Each subcommand lives in its own module under ``attnlab.cli`` and exposes
``register(subparsers)``; ``attnlab train TASK`` tasks expose ``register_train(subparsers)``.
A handler is stored as ``func`` on the parsed namespace. Bad input ends in one line on
stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from attnlab import __version__
from attnlab.cli.options import HelpFormatter
from attnlab.errors import AttnlabError
from attnlab.training import distributed

# Modules providing top-level subcommands (``register``) — add yours here.
COMMAND_MODULES: list[str] = [
    "attnlab.cli.showcase",
    "attnlab.cli.bench",
    "attnlab.cli.demo",
    "attnlab.cli.translate",
    "attnlab.cli.viz",
    "attnlab.cli.explore",
    "attnlab.cli.explain",
    "attnlab.cli.gpt",
    "attnlab.cli.bert",
    "attnlab.cli.vit",
    "attnlab.cli.compare",
    "attnlab.cli.export",
    "attnlab.cli.kernels",
]
# Modules providing ``attnlab train TASK`` (``register_train``) — add yours here.
TRAIN_MODULES: list[str] = [
    "attnlab.cli.translate",
    "attnlab.cli.graph",
    "attnlab.cli.gpt",
    "attnlab.cli.bert",
    "attnlab.cli.vit",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attnlab",
        description="The neural attention family: train, inspect and compare attention models.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"attnlab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    train = commands.add_parser(
        "train", help="train a model on its embedded default data or your own", formatter_class=HelpFormatter
    )
    tasks = train.add_subparsers(dest="task", metavar="TASK", required=True)
    for name in TRAIN_MODULES:
        importlib.import_module(name).register_train(tasks)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if (getattr(args, "nproc", None) or 1) > 1 and not distributed.launched():
        distributed.exec_torchrun(args.nproc, argv)  # replaces this process; torchrun starts the ranks
    distributed.quiet_other_ranks()
    try:
        result = args.func(args)
    except KeyboardInterrupt as e:
        print("attnlab: interrupted", file=sys.stderr)
        return 128 + getattr(e, "signum", 2)  # 130 after Ctrl-C, 143 after SIGTERM
    except (AttnlabError, OSError) as e:  # OSError: a disk full, read-only or missing file is one line too
        print(f"attnlab: error: {e}", file=sys.stderr)
        return 2
    return int(result or 0)


def run() -> int:
    """The ``attnlab`` command: :func:`main`, then, under torchrun, every rank leaves the
    process group together (after a success; alone after an error), so that no rank exits
    while a peer still talks to it."""
    code = main()
    distributed.shutdown(wait=code == 0)
    return code


if __name__ == "__main__":
    sys.exit(run())
