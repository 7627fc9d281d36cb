"""Imports flow one way: serving → training → graphs → features → leadscope (kernel)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["leadscope", "features", "graphs", "training", "serving"]
COMPOSITION_ROOT = {"leadscope/cli.py"}  # the CLI wires every layer, lazily inside its commands


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_no_layer_imports_a_layer_above_it() -> None:
    # broken: a cycle or a kernel that drags in FastAPI/MLflow; layers could no longer be used alone
    bad = []
    for rank, pkg in enumerate(ORDER):
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if rel in COMPOSITION_ROOT:
                continue
            above = _imports(path) & set(ORDER[rank + 1 :])
            if above:
                bad.append(f"{rel} imports {sorted(above)}")
    assert not bad, bad
