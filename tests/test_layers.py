"""The import rule of docs/ARCHITECTURE.md: serving → training → features → graphs → leadscope (kernel), never
backwards; the kernel imports nothing of ours but the CLI (the composition root); the generator's truth reaches
only evaluation code."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["leadscope", "graphs", "features", "training", "serving"]
COMPOSITION_ROOT = "leadscope/cli/"  # the CLI wires every layer, lazily inside its commands
# evaluation code: compares models with what the generator knows; production code never imports it
EVALUATION = {"training/oracle.py", "training/nba_eval.py", "training/lookalike_eval.py"}
GENERATOR = "leadscope.synth"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def _modules(pkg: str) -> list[tuple[str, set[str]]]:
    return [(p.relative_to(ROOT).as_posix(), _imports(p)) for p in sorted((ROOT / pkg).rglob("*.py"))]


def test_no_layer_imports_a_layer_above_it() -> None:
    # broken: a cycle or a kernel that drags in FastAPI/MLflow; layers could no longer be used alone
    bad = []
    for rank, pkg in enumerate(ORDER):
        for rel, imports in _modules(pkg):
            if rel.startswith(COMPOSITION_ROOT):
                continue
            above = {i.split(".")[0] for i in imports} & set(ORDER[rank + 1 :])
            if above:
                bad.append(f"{rel} imports {sorted(above)}")
    assert not bad, bad


def test_nothing_imports_the_cli() -> None:
    # broken: the composition root would become a library, and business rules would drift back into it
    bad = [
        rel
        for pkg in ORDER
        for rel, imports in _modules(pkg)
        if not rel.startswith(COMPOSITION_ROOT) and any(i.startswith("leadscope.cli") for i in imports)
    ]
    assert not bad, bad


def test_only_evaluation_code_reads_the_generators_truth() -> None:
    # broken: a model trained on a real company's data (no truth) would depend on the generator
    evaluation = {m.removesuffix(".py").replace("/", ".") for m in EVALUATION}
    bad = []
    for pkg in ORDER[1:]:
        for rel, imports in _modules(pkg):
            if rel in EVALUATION:
                continue
            if hits := sorted(i for i in imports if i.startswith(GENERATOR) or i in evaluation):
                bad.append(f"{rel} imports {hits}")
    assert not bad, bad


def test_the_kernel_imports_nothing_of_ours() -> None:
    # broken: settings or the tables would pull in Feast, MLflow or FastAPI for every command
    bad = [
        f"{rel} imports {sorted(i for i in imports if i.split('.')[0] in ORDER[1:])}"
        for rel, imports in _modules("leadscope")
        if not rel.startswith(COMPOSITION_ROOT) and any(i.split(".")[0] in ORDER[1:] for i in imports)
    ]
    assert not bad, bad


def test_no_module_is_over_450_lines() -> None:
    # broken: serving/console/__init__.py (865 lines, 18 routes) and serving/live.py (694 lines, seven jobs)
    big = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for pkg in ORDER
        for p in sorted((ROOT / pkg).rglob("*.py"))
        if "synth" not in p.parts and (n := len(p.read_text().splitlines())) > 450
    ]
    assert not big, big


def test_no_import_circles() -> None:
    # broken: serving.app <-> serving.live and features.build <-> features.graph_pool <-> features.live (lazy imports
    # count: a circle of them is one module in two files)
    import networkx as nx

    modules = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for pkg in ORDER
        for p in (ROOT / pkg).rglob("*.py")
    }

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = nx.DiGraph()
    for mod, path in modules.items():
        for target in _imports(path):
            found = resolve(target)
            if found and found != mod and not mod.startswith(found + "."):
                graph.add_edge(mod, found)
    circles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert not circles, circles
