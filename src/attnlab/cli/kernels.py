"""``attnlab kernels build``: compile the C kernels now, not at a run's first forward."""

from __future__ import annotations

import sys

from attnlab.cli.options import add_command

EXAMPLES = """  attnlab kernels build
  ATTNLAB_CACHE=/scratch/me/attnlab attnlab kernels build
  CC=clang attnlab kernels build
"""


def register(subparsers) -> None:
    parser = add_command(
        subparsers, "kernels", "the C kernels: compile them ahead of first use (into $ATTNLAB_CACHE)", EXAMPLES
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="compile every C kernel for this machine and cache it")
    build.set_defaults(func=run_build)


def run_build(args) -> int:
    from attnlab.kernels.native import build

    failed = 0
    for name, result in build.build_all().items():
        if isinstance(result, str):
            failed += 1
            print(f"attnlab kernels: {name}: {result}", file=sys.stderr)
        else:
            print(f"{name}: {result}")
    if not failed:
        print(f"all {len(build.KERNELS)} kernels are built and cached in {build.cache_dir()}")
    return 1 if failed else 0
