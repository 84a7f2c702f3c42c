"""Entry point of the ``attnlab`` command.

Each subcommand lives in its own module under ``attnlab.cli`` and exposes
``register(subparsers)``; ``attnlab train TASK`` tasks expose ``register_train(subparsers)``.
A module that names its commands in ``COMMANDS`` (and its tasks in ``TASKS``: name -> help
line) is imported but registered in full only when its command is asked for, so ``attnlab
--version`` and ``--help`` import no torch and no model, and a command imports only its own
app; a module without them is registered always. A handler is stored as ``func`` on the parsed namespace.
Bad input ends in one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from attnlab import __version__
from attnlab.cli.options import HelpFormatter
from attnlab.errors import AttnlabError

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
    "attnlab.cli.graph",
]
# Modules providing ``attnlab train TASK`` (``register_train``) — add yours here.
TRAIN_MODULES: list[str] = [
    "attnlab.cli.translate",
    "attnlab.cli.graph",
    "attnlab.cli.gpt",
    "attnlab.cli.bert",
    "attnlab.cli.vit",
]


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the command it names is registered in full (the
    others are listed by name and help line), without it every command is."""
    parser = argparse.ArgumentParser(
        prog="attnlab",
        description="The neural attention family: train, inspect and compare attention models.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"attnlab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    words = [a for a in (argv or []) if not a.startswith("-")]
    chosen = None if argv is None else (words[0] if words else "")
    task = None if argv is None else (words[1] if chosen == "train" and len(words) > 1 else "")
    train = commands.add_parser(
        "train", help="train a model on its embedded default data or your own", formatter_class=HelpFormatter
    )
    tasks = train.add_subparsers(dest="task", metavar="TASK", required=True)
    for name in TRAIN_MODULES:
        _register(importlib.import_module(name), "TASKS", "register_train", tasks, task)
    for name in COMMAND_MODULES:
        _register(importlib.import_module(name), "COMMANDS", "register", commands, chosen)
    return parser


def _register(module, listing: str, register: str, subparsers, chosen: str | None) -> None:
    """The module's commands in full when one of them is ``chosen`` (None: always), else
    their names and help lines only."""
    names: dict[str, str] | None = getattr(module, listing, None)
    if names is None or chosen is None or chosen in names:
        getattr(module, register)(subparsers)
        return
    for name, help in names.items():
        subparsers.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    try:
        from attnlab.apps.commands import launch

        launch(getattr(args, "nproc", None), argv)  # --nproc N: this process becomes torchrun's launcher
        result = args.func(args)
    except KeyboardInterrupt as e:
        print("attnlab: interrupted", file=sys.stderr)
        return 128 + getattr(e, "signum", 2)  # 130 after Ctrl-C, 143 after SIGTERM
    except (AttnlabError, OSError) as e:  # OSError: a disk full, read-only or missing file is one line too
        from attnlab.apps.commands import hand_over_error

        if not hand_over_error(str(e)):  # under --nproc the launcher prints it, once for all ranks
            print(f"attnlab: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # under torchrun: another rank died mid-collective, which the launcher reports
        from attnlab.apps.commands import stopped_by_peer

        status = stopped_by_peer(e)
        if status is None:
            raise
        return status
    finally:
        from attnlab.apps.commands import release_folders

        release_folders()
    return int(result or 0)


def run() -> int:
    """The ``attnlab`` command: :func:`main`, then, under torchrun, every rank leaves the
    process group together (after a success; alone after an error), so that no rank exits
    while a peer still talks to it."""
    from attnlab.apps.commands import leave  # light: torch.distributed only under torchrun

    code = main()
    leave(wait=code == 0)
    return code


if __name__ == "__main__":
    sys.exit(run())
