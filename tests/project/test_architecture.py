"""The shape of the code, checked: no import cycles (imports inside functions included), layers that
point one way (the system of record, history/, sits between the contract and the web), no Faust outside
the worker, and modules of a readable size.

The import graph is read from the source (ast), so an import hidden inside a function counts as much
as one at the top of a module.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
PACKAGES = ("contract", "detector", "nonsite", "stream", "history", "web")
MAX_LINES = 400
# modules allowed to be longer, and why
LONG_MODULES: dict[str, str] = {}


def module_files() -> dict[str, Path]:
    files = {}
    for package in PACKAGES:
        for path in sorted((PROJECT / package).rglob("*.py")):
            parts = path.relative_to(PROJECT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            files[name] = path
    return files


MODULES = module_files()


def imported_modules(name: str, path: Path) -> set[str]:
    """The project modules ``name`` imports anywhere in its source (``from p import m`` counts as p.m
    when m is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            submodules = {f"{base}.{alias.name}" for alias in node.names} & set(MODULES)
            found |= submodules
            if len(submodules) < len(node.names):  # names defined in ``base`` itself
                found.add(base)
    return {module for module in found if module in MODULES and module != name}


def _runtime_nodes(tree: ast.AST):
    """Every node, less the bodies of ``if TYPE_CHECKING:`` (imports for the type checker only)."""
    pending = [tree]
    while pending:
        node = pending.pop()
        yield node
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))


GRAPH = {name: imported_modules(name, path) for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
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
    return found


def test_there_are_no_import_cycles():
    assert cycles(GRAPH) == []


def depends(module: str, prefix: str) -> list[str]:
    return sorted(target for target in GRAPH[module] if target == prefix or target.startswith(prefix + "."))


@pytest.mark.parametrize("lower, upper", [
    ("contract", "detector"), ("contract", "stream"), ("contract", "web"), ("contract", "nonsite"),
    ("stream.state", "stream.domain"), ("stream.state", "stream.runtime"), ("stream.domain", "stream.runtime"),
    ("detector", "stream"), ("detector", "web"), ("web", "stream"), ("web", "detector"),
    ("contract", "history"), ("history", "web"), ("history", "stream"), ("history", "detector"),
    ("stream", "history"), ("detector", "history"),
])
def test_layers_point_one_way(lower, upper):
    offending = {m: depends(m, upper) for m in MODULES if (m == lower or m.startswith(lower + ".")) and depends(m, upper)}
    assert offending == {}, f"{lower} must not import {upper}"


def test_the_pure_domain_imports_no_kafka_client_and_no_faust():
    clients = ("faust", "aiokafka", "kafka", "mode")
    for name, path in MODULES.items():
        if name.startswith(("stream.domain", "stream.state", "contract", "history")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for alias in node.names}
            roots |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
            assert not roots & set(clients), f"{name} imports {sorted(roots & set(clients))}"


@pytest.mark.parametrize("entry", ["web.app", "detector.cli", "detector.pipeline", "contract"])
def test_the_detector_and_the_web_app_load_no_faust(entry):
    code = f"import sys, {entry}; print(sorted(m for m in ('faust', 'mode') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_modules_stay_readable():
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES and name not in LONG_MODULES}
    assert long == {}, f"modules over {MAX_LINES} lines (split them, or state why in LONG_MODULES)"
