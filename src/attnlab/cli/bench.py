"""``attnlab bench``: the side-by-side speed/memory benchmarks, printed as tables.

The benchmark scripts live in the source checkout's ``benchmarks/`` folder (they need
the peers installed: ``pip install -e '.[dev]'``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from attnlab.cli.main import add_command
from attnlab.errors import AttnlabError

EXAMPLES = """  attnlab bench                 every benchmark
  attnlab bench attention --quick
"""


def benchmarks_folder() -> Path:
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):
        if (root / "benchmarks" / "run_all.py").is_file():
            return root
    raise AttnlabError("benchmarks/ not found: run `attnlab bench` from an attnlab source checkout")


def register(subparsers) -> None:
    parser = add_command(subparsers, "bench", "speed and memory against the peers (PyTorch, HuggingFace, PyG)", EXAMPLES)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.set_defaults(func=run)


def run(args) -> int:
    command = [sys.executable, "-m", "benchmarks.run_all", *args.names] + (["--quick"] if args.quick else [])
    return subprocess.call(command, cwd=benchmarks_folder())
