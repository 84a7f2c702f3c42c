"""One vocabulary on the command line, walked over every subcommand: every option has help
text, the shared flags have one name, metavar, type and default everywhere, every command
that runs a model takes --device/--seed/--threads, and --version/--help import no torch."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from attnlab.cli.main import build_parser

RUNS_A_MODEL = {"translate", "generate", "fill-mask", "classify", "viz", "explore", "explain", "export", "predict",
                "demo", "compare"}
SHARED = ("--device", "--seed", "--threads", "--max-minutes", "--steps", "--batch-size", "--lr", "--warmup",
          "--bf16", "--quiet", "--overwrite", "--resume", "--save-every", "--dropout", "--nproc")


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser by its path (``train lm``, ``generate``, ``kernels build``)."""
    found = {}

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found[f"{path} {name}".strip()] = sub
                    walk(sub, f"{path} {name}".strip())

    walk(build_parser(), "")
    return found


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: a for a in parser._actions for flag in a.option_strings if flag.startswith("--") and flag != "--help"}


ALL = commands()
LEAVES = {path: p for path, p in ALL.items() if not any(other.startswith(path + " ") for other in ALL)}


@pytest.mark.parametrize("path", sorted(LEAVES))
def test_every_option_has_help(path):
    for flag, action in options(LEAVES[path]).items():
        assert action.help and action.help != argparse.SUPPRESS, f"attnlab {path} {flag}: no help text"
        assert "(default: True)" not in action.help % {"default": action.default}, f"attnlab {path} {flag}"
    with pytest.raises(SystemExit) as stop:
        LEAVES[path].parse_args(["--help"])
    assert stop.value.code == 0


def test_shared_flags_read_the_same_everywhere():
    seen: dict[str, set] = {}
    for _path, parser in LEAVES.items():
        for flag, action in options(parser).items():
            if flag in SHARED:
                kind = getattr(action.type, "__name__", str(action.type))
                seen.setdefault(flag, set()).add((action.metavar, kind, type(action).__name__))
    differing = {flag: forms for flag, forms in seen.items() if len(forms) > 1}
    assert not differing, differing
    devices = {options(p)["--device"].default for p in LEAVES.values() if "--device" in options(p)}
    assert devices == {"cpu"}


def test_every_command_that_runs_a_model_has_the_run_flags():
    train = [path for path in LEAVES if path.startswith("train ")]
    assert {"train lm", "train gat", "train han", "train vit", "train translate"} <= set(train)
    for path in [*RUNS_A_MODEL, *train]:
        missing = {"--device", "--seed", "--threads"} - set(options(LEAVES[path]))
        assert not missing, f"attnlab {path}: no {sorted(missing)}"
    for path in train:  # what the README promises on every train command (GAT/HAN: the graph is the batch)
        wanted = {"--warmup", "--bf16", "--max-minutes"} | (set() if path in ("train gat", "train han") else
                                                             {"--batch-size"})
        assert wanted <= set(options(LEAVES[path])), f"attnlab {path}: no {sorted(wanted - set(options(LEAVES[path])))}"


def test_out_says_folder_or_file():
    for path, parser in LEAVES.items():
        out = options(parser).get("--out")
        if out is not None:
            named = f"{out.help} {out.metavar or ''}".lower()
            assert "folder" in named or "file" in named or ".po" in named, f"attnlab {path} --out: folder or file?"


def test_time_budgets_are_called_max_minutes():
    for path, parser in LEAVES.items():
        flags = options(parser)
        if "--minutes" in flags:
            assert "--max-minutes" in flags and "deprecated" in flags["--minutes"].help, path


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["train", "--help"]])
def test_version_and_help_import_no_torch(argv):
    code = (f"import sys\nfrom attnlab.cli.main import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'\nprint('light')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "light" in done.stdout, done.stderr
