"""Architecture rules: the training core never imports textual; light commands don't import torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "workbench"
CORE = ["training", "models", "data", "diagnostics", "store.py", "config.py", "presets.py", "builders.py",
        "registry.py", "summary.py", "progress.py", "catalog.py"]


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
    for entry in CORE:
        target = PACKAGE / entry
        yield from (target.rglob("*.py") if target.is_dir() else [target])


def test_training_core_never_imports_textual():
    offenders = [str(f.relative_to(PACKAGE)) for f in core_files()
                 if any(m == "textual" or m.startswith("textual.") or m.startswith("workbench.tui")
                        for m in imported_modules(f))]
    assert offenders == []


def test_validating_and_listing_does_not_import_torch():
    code = ("import sys; from workbench.presets import load_preset; from workbench.cli import build_parser; "
            "load_preset('mlp-quadrants', ['optim.lr=0.1']); build_parser().parse_args(['runs']); "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr
