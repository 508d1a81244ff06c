"""Architecture rules: the training core never imports textual; light commands don't import torch; the
import-linter contracts in pyproject.toml hold; and no two modules of the package import each other."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "workbench"
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
# The core's modules are listed once: in the import-linter contract that keeps textual out of them.
CORE = next(c["source_modules"] for c in CONTRACTS if c["type"] == "forbidden" and "textual" in c["forbidden_modules"])


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def core_files():
    for module in CORE:
        target = ROOT / module.replace(".", "/")
        yield from (target.rglob("*.py") if target.is_dir() else [target.with_suffix(".py")])


def test_training_core_never_imports_textual():
    files = list(core_files())
    assert len(files) > 20  # the contract's module names still name real modules
    offenders = [str(f.relative_to(PACKAGE)) for f in files
                 if any(m == "textual" or m.startswith("textual.") or m.startswith("workbench.tui")
                        for m in imported_modules(f))]
    assert offenders == []


def test_validating_and_listing_does_not_import_torch():
    code = ("import sys; from workbench.presets import load_preset; from workbench.cli import build_parser; "
            "load_preset('mlp-quadrants', ['optim.lr=0.1']); build_parser().parse_args(['runs']); "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_import_linter_contracts_hold(capsys):
    """`lint-imports` with pyproject.toml's contracts: core without textual, screens independent, widgets
    below screens (indirect imports count)."""
    from importlinter.cli import lint_imports

    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in out


# -- import cycles -------------------------------------------------------------------------------------
def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports.

    The rule: every import statement counts, wherever it is (module level, inside a function, under
    `if TYPE_CHECKING:`): a deferred or type-only import still means the two modules know each other, and
    a deferred one runs sooner or later. `from a.b import c` counts as importing `a.b.c` when that is a
    module, else `a.b`. A package's `__init__` is not added for its submodules: it only runs first."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from .x import y
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                found = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            for target in found:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_cycle_finder_sees_deferred_and_type_only_imports():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    real = import_graph()
    # a function-level import (the app's lazy dashboard) and a type-only one (messages -> the queue) are edges
    assert "workbench.tui.screens.dashboard" in real["workbench.tui.app"]
    assert "workbench.tui.queue" in real["workbench.tui.messages"]



def test_no_import_cycle_in_the_package():
    assert cycles(import_graph()) == []
