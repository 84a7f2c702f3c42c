"""``attnlab kernels build``: compile the C kernels now, not at a run's first forward."""

from __future__ import annotations

import sys

from attnlab.cli.options import add_command

EXAMPLES = """  attnlab kernels build
  ATTNLAB_CACHE=/scratch/me/attnlab attnlab kernels build
  CC=clang attnlab kernels build
"""


COMMANDS = {"kernels": "the C kernels: compile them ahead of first use (into $ATTNLAB_CACHE)"}


def register(subparsers) -> None:
    parser = add_command(subparsers, "kernels", COMMANDS["kernels"], EXAMPLES)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="compile every C kernel for this machine and cache it")
    build.set_defaults(func=run_build)


def run_build(args) -> int:
    from attnlab.apps.commands import build_kernels

    results, count, cache = build_kernels()
    failed = 0
    for name, result in results.items():
        if isinstance(result, str):
            failed += 1
            print(f"attnlab kernels: {name}: {result}", file=sys.stderr)
        else:
            print(f"{name}: {result}")
    if not failed:
        print(f"all {count} kernels are built and cached in {cache}")
    return 1 if failed else 0
