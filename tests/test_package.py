"""The package's shape: no import cycles (package cycles included), the layout ARCHITECTURE.md
describes, docstrings on public functions, tests mirroring the package."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "kws"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> kws modules it imports at module level or in functions.

    `from P import name` depends on P itself (its __init__ runs and binds `name`), and on
    `P.name` when that is a module: so a module that imports its own package, whose __init__
    imports it back, is a cycle.
    """
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_counting_package_cycles():
    assert cycles(import_graph()) == []


def test_the_ground_floor_imports_nothing_of_kws():
    graph = import_graph()
    assert graph["kws.errors"] == set()
    assert {m for m in graph["kws.io"]} <= {"kws.errors"}


def test_every_public_function_and_class_has_a_docstring():
    missing = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                if ast.get_docstring(node) is None:
                    missing.append(f"{module_name(path)}.{node.name}")
    assert missing == []


def test_public_functions_that_raise_say_what():
    undocumented = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
                continue
            raises = any(isinstance(n, ast.Raise) for n in ast.walk(node))
            doc = ast.get_docstring(node) or ""
            if raises and "Raises" not in doc and "raise" not in doc.lower():
                undocumented.append(f"{module_name(path)}.{node.name}")
    assert undocumented == []


def test_tests_mirror_the_package():
    """Every test file sits in the folder of the package part it pins and is named after a
    module there, optionally with an aspect (tests/growth/test_scores.py pins
    kws/growth/scores.py; tests/stream/test_microphone_virtual.py pins kws/stream/microphone.py).
    tests/recipes pins recipes/, tests/benchmarks pins benchmarks/ (by script name); this file
    pins the package as a whole."""
    orphans = []
    for test in (ROOT / "tests").rglob("test_*.py"):
        folder = test.parent.relative_to(ROOT / "tests")
        name = test.stem.removeprefix("test_")
        home = ROOT / "benchmarks" if folder.parts[:1] == ("benchmarks",) else PACKAGE / folder
        modules = [p.stem for p in home.glob("*.py")]
        modules += [p.name for p in home.iterdir() if p.is_dir()] if home.is_dir() else []
        pinned = any(name == m or name.startswith(f"{m}_") for m in modules)
        if not (pinned or folder.parts[:1] == ("recipes",) or test == Path(__file__)):
            orphans.append(str(test.relative_to(ROOT)))
    assert orphans == []
