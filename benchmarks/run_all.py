"""Run the side-by-side benchmark scripts in this folder, one subprocess each.

    python -m benchmarks.run_all --quick     the goals table: every ratio of the performance
                                             goals, one process (benchmarks/goals.py --quick)
    python -m benchmarks.run_all [NAME ...]  every script (or the named ones) in full
    python -m benchmarks.run_all NAME --quick   the named scripts' quick modes

Each script prints Markdown tables; copy the latest into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOT_BENCHMARKS = {"__init__", "common", "run_all", "gpt_curve", "bf16_curve", "profile_steps"}  # training curves, profiles


def available() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.py") if p.stem not in NOT_BENCHMARKS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {available()})")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(available()))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {available()}", file=sys.stderr)
        return 2
    failed = []
    names = args.names or (["goals"] if args.quick else available())
    for name in names:
        print(f"\n## {name}\n", flush=True)
        command = [sys.executable, "-m", f"benchmarks.{name}"] + (["--quick"] if args.quick else [])
        if subprocess.call(command, cwd=HERE.parent) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
