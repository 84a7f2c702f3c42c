"""``attnlab bench``: the side-by-side speed/memory benchmarks, printed as tables.

The benchmark scripts live in the source checkout's ``benchmarks/`` folder (they need
the peers installed: ``pip install -e '.[dev]'``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from attnlab.cli.options import add_command
from attnlab.errors import AttnlabError

EXAMPLES = """  attnlab bench                 every benchmark
  attnlab bench attention --quick
"""


def benchmarks_folder() -> Path:
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):
        if (root / "benchmarks" / "run_all.py").is_file():
            return root
    raise AttnlabError(
        "attnlab bench runs the scripts in an attnlab source checkout's benchmarks/ folder, which an installed "
        "wheel does not ship: clone the repository, `pip install -e '.[dev]'` there (the peers: transformers, "
        "torch_geometric) and run `attnlab bench` from it"
    )


def check_peers() -> None:
    """The benchmarks run the peers side by side: say which are missing, in one line."""
    import importlib.util

    missing = [name for name in ("transformers", "torch_geometric") if importlib.util.find_spec(name) is None]
    if missing:
        raise AttnlabError(f"attnlab bench compares against {', '.join(missing)}: pip install -e '.[dev]' first")


COMMANDS = {"bench": "speed and memory against the peers (PyTorch, HuggingFace, PyG)"}


def register(subparsers) -> None:
    parser = add_command(subparsers, "bench", COMMANDS["bench"], EXAMPLES)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.set_defaults(func=run)


def run(args) -> int:
    root = benchmarks_folder()
    check_peers()
    command = [sys.executable, "-m", "benchmarks.run_all", *args.names] + (["--quick"] if args.quick else [])
    return subprocess.call(command, cwd=root)
