"""The layout's rules, checked from the code's imports (docs/architecture.md draws them).

Every import counts: at the top of a module, inside functions, and module names written
as strings for ``importlib`` (``"attnlab.apps.lm"``, ``"attnlab.cli.bert:view"``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
MODULE_STRING = re.compile(r"attnlab(\.[a-z_0-9]+)+(:[A-Za-z_0-9]+)?")

# package -> packages it must never import
FORBIDDEN = {
    "attention": {"models", "data", "training", "evaluation", "interop", "apps", "cli", "viz", "layers"},
    "kernels": {"attention", "layers", "models", "data", "training", "evaluation", "interop", "apps", "cli", "viz"},
    "layers": {"models", "data", "training", "evaluation", "interop", "apps", "cli", "viz"},
    "interop": {"models", "training", "apps", "cli", "viz"},
    "models": {"training", "apps", "cli", "data", "viz"},
    "training": {"models", "apps", "cli", "data", "viz", "interop"},
    "evaluation": {"models", "training", "apps", "cli"},
    "data": {"models", "training", "apps", "cli", "viz"},
    "viz": {"models", "training", "apps", "cli"},
    "explain": {"models", "data", "training", "evaluation", "interop", "cli"},  # model-agnostic
    "apps": {"cli"},
}
# The Python API: ``attnlab.explain(...)`` and ``attnlab.explore(...)`` reach their app on first use.
PYTHON_API = {("attnlab", "attnlab.apps.explain"), ("attnlab.explain", "attnlab.apps.explain")}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def module_name(path: Path) -> tuple[str, list[str]]:
    """``attnlab.x.y`` and the package parts a relative import starts from."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
        return ".".join(parts), parts
    return ".".join(parts), parts[:-1]


def imports(path: Path, known: set[str]) -> set[str]:
    """Every attnlab module ``path`` imports (resolved to the most specific known module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    _, package = module_name(path)
    found: set[str] = set()
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if MODULE_STRING.fullmatch(node.value):
                names = [node.value.split(":")[0]]
        elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            prefix = str(node.values[0].value)
            if prefix.startswith("attnlab.") and prefix.endswith("."):
                names = [prefix[:-1]]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name.startswith("attnlab"):
                found.add(name)
    return found


def reexports(path: Path, known: set[str]) -> dict[str, str]:
    """A package's ``__init__``: name -> the module it re-exports the name from
    (``from attnlab.training.config import resolve_device`` in ``training/__init__.py``)."""
    found = {}
    _, package = module_name(path)
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                if target in known:
                    found[alias.asname or alias.name] = target
    return found


def indirect(path: Path, known: set[str], exported: dict[str, dict[str, str]]) -> set[str]:
    """The modules ``path`` reaches through a package's re-exports (``from attnlab.training
    import resolve_device`` reaches ``attnlab.training.config``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module in exported:
            found |= {exported[node.module][a.name] for a in node.names if a.name in exported[node.module]}
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = {module_name(p)[0]: p for p in (SRC / "attnlab").rglob("*.py")}
    known = set(files)
    exported = {name: reexports(path, known) for name, path in files.items() if path.name == "__init__.py"}
    return {name: (imports(path, known) | indirect(path, known, exported)) - {name} for name, path in files.items()}


def package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_graph_sees_every_kind_of_import(graph):
    assert "attnlab.apps.lm" in graph["attnlab.cli.gpt"]  # from-import of a package's module
    assert "attnlab.cli.main" in graph["attnlab.__main__"]
    assert any(m.startswith("attnlab.apps") for m in graph["attnlab.cli.viz"])  # inside a function


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_no_import_cycles(graph):
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_package_cycles(graph):
    """Between packages too: ``data -> evaluation -> data`` is a cycle even when no two
    modules import each other."""
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        packages.setdefault(package(module), set()).update(
            package(t) for t in targets if package(t) != package(module) and (module, t) not in PYTHON_API)
    cycles = find_cycles(packages)
    assert not cycles, "package cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_checks_see_cycles_and_re_exports():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    init = SRC / "attnlab" / "training" / "__init__.py"
    known = {module_name(p)[0] for p in (SRC / "attnlab").rglob("*.py")}
    assert reexports(init, known)["resolve_device"] == "attnlab.training.config"


def test_layers_only_import_downwards(graph):
    broken = [
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if package(target) in FORBIDDEN.get(package(module), set())
    ]
    assert not broken, "\n".join(sorted(broken))


CLI_MAY_IMPORT = {"cli", "apps", "errors"}  # the CLI parses flags and calls apps: nothing below them


def test_cli_imports_nothing_but_apps_and_errors(graph):
    broken = [f"{module} imports {target}" for module, targets in graph.items() if package(module) == "cli"
              for target in targets if package(target) not in CLI_MAY_IMPORT and target != "attnlab"]
    assert not broken, "\n".join(sorted(broken))


def test_only_cli_imports_apps_and_nothing_imports_cli(graph):
    broken = []
    for module, targets in graph.items():
        for target in targets:
            if package(target) == "apps" and package(module) not in ("apps", "cli") and (module, target) not in PYTHON_API:
                broken.append(f"{module} imports {target}")
            if package(target) == "cli" and package(module) != "cli" and module != "attnlab.__main__":
                broken.append(f"{module} imports {target}")
    assert not broken, "\n".join(sorted(broken))
