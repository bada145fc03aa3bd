"""The import rules between the layers, read from the repo's own sources (AST, no imports run).

- Nothing in `activities/` imports `tikflow` (the provider calls sit below the composition root).
- `workflows/` imports neither `httpx` nor `tikflow.emulator` at module level, directly or
  through the repo modules it imports at module level (Temporal's workflow sandbox re-imports
  them for every run; the interpreter makes no HTTP calls of its own).
- The provider emulator (`tikflow/emulator`) imports nothing from `activities` or `workflows`
  (it stands in for the providers and must not borrow the code it is there to test).

An import counts wherever it is written, inside functions too, except under
`if TYPE_CHECKING:`; the workflows rule follows module-level imports only, since a function-level
import runs in an activity or at the worker, never while the workflow module is loaded.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("activities", "workflows", "tikflow")


@dataclass(frozen=True)
class Import:
    """One module an import statement loads."""

    target: str
    line: int
    module_level: bool
    #: `from pkg import name`: `pkg.name`, which is loaded only if it is a module.
    if_module: bool = False


@dataclass(frozen=True)
class Rule:
    """Modules under `scope` must not reach any module under one of `forbidden`."""

    name: str
    scope: str
    forbidden: tuple[str, ...]
    module_level_only: bool


RULES = (
    Rule("activities import no tikflow", "activities", ("tikflow", "worker"), module_level_only=False),
    Rule(
        "workflows import neither httpx nor the emulator at module level",
        "workflows",
        ("httpx", "tikflow.emulator"),
        module_level_only=True,
    ),
    Rule(
        "the emulator imports nothing from activities or workflows",
        "tikflow.emulator",
        ("activities", "workflows"),
        module_level_only=False,
    ),
)


def module_name(root: Path, file: Path) -> str:
    """`pkg/sub/mod.py` → `pkg.sub.mod`; `pkg/__init__.py` → `pkg`."""
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def repo_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of `packages` under `root`, by dotted name."""
    found: dict[str, Path] = {}
    for package in packages:
        for file in sorted((root / package).rglob("*.py")):
            found[module_name(root, file)] = file
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(source: str, name: str, is_package: bool) -> list[Import]:
    """The modules `source` (module `name`) imports, with line and whether at module level."""
    found: list[Import] = []
    package = name if is_package else name.rpartition(".")[0]

    def visit(node: ast.AST, module_level: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for other in node.orelse:
                visit(other, module_level)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno, module_level) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.append(Import(base, node.lineno, module_level))
            # `from pkg import mod` loads `pkg.mod` when it is a module.
            found.extend(
                Import(f"{base}.{alias.name}", node.lineno, module_level, True) for alias in node.names
            )
        # A function's body runs when it is called; everything else (class bodies too) at import.
        inner = module_level and not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(source), module_level=True)
    return found


def import_graph(modules: Mapping[str, Path]) -> dict[str, list[Import]]:
    """Each module's imports, a loaded submodule's parent packages included (their `__init__` runs)."""
    graph: dict[str, list[Import]] = {}
    for name, file in modules.items():
        edges: list[Import] = []
        for found in imports_of(file.read_text(), name, file.name == "__init__.py"):
            if found.if_module and found.target not in modules:
                continue
            parts = found.target.split(".")
            for n in range(1, len(parts) + 1):
                edges.append(Import(".".join(parts[:n]), found.line, found.module_level))
        graph[name] = edges
    return graph


def violations(graph: Mapping[str, list[Import]], rule: Rule) -> Iterator[str]:
    """One line per import statement that reaches a forbidden module from the rule's scope: the
    chain of `module:line` imports that leads there, ending in the forbidden module."""
    for start in sorted(m for m in graph if _under(m, rule.scope)):
        seen = {start}
        queue: list[tuple[str, list[str]]] = [(start, [start])]
        while queue:
            current, chain = queue.pop(0)
            bad_by_line: dict[int, list[str]] = {}
            for edge in graph.get(current, []):
                if rule.module_level_only and not edge.module_level:
                    continue
                step = [*chain[:-1], f"{chain[-1]}:{edge.line}", edge.target]
                if any(_under(edge.target, bad) for bad in rule.forbidden):
                    # The most specific module the statement loads.
                    if len(edge.target) > len(bad_by_line.get(edge.line, [""])[-1]):
                        bad_by_line[edge.line] = step
                elif edge.target in graph and edge.target not in seen:
                    seen.add(edge.target)
                    queue.append((edge.target, step))
            yield from (" -> ".join(step) for step in bad_by_line.values())


@pytest.fixture(scope="module")
def repo_graph() -> dict[str, list[Import]]:
    modules = repo_modules(ROOT, PACKAGES)
    modules["worker"] = ROOT / "worker.py"
    return import_graph(modules)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_the_repo_keeps_the_import_rule(repo_graph: dict[str, list[Import]], rule: Rule) -> None:
    assert any(_under(m, rule.scope) for m in repo_graph), f"no module under {rule.scope}"
    broken = sorted(set(violations(repo_graph, rule)))
    assert broken == [], f"{rule.name}:\n" + "\n".join(broken)


def _write(root: Path, files: Mapping[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_violating_module_graph_is_reported_with_its_chain(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "activities/__init__.py": "",
            "activities/clean.py": "import json\nfrom . import shapes\n",
            "activities/shapes.py": "def later():\n    from tikflow import settings\n",
            "workflows/__init__.py": "",
            "workflows/recipe.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    import httpx\n"
                "from workflows import models\n"
                "def run():\n    import httpx\n"
            ),
            "workflows/models.py": "from activities.contracts import Thing\n",
            "activities/contracts.py": "import httpx\n",
            "tikflow/__init__.py": "",
            "tikflow/settings.py": "",
            "tikflow/emulator/__init__.py": "from .app import create_app\n",
            "tikflow/emulator/app.py": "import starlette\nfrom workflows.models import X\n",
        },
    )
    graph = import_graph(repo_modules(tmp_path, PACKAGES))
    found = {rule.scope: sorted(set(violations(graph, rule))) for rule in RULES}
    # In a function, through a relative import: any import counts for activities.
    assert found["activities"] == [
        "activities.clean:2 -> activities.shapes:2 -> tikflow.settings",
        "activities.shapes:2 -> tikflow.settings",
    ]
    # Through two repo modules, at module level; the TYPE_CHECKING and in-function imports do not count.
    assert found["workflows"] == [
        "workflows.models:1 -> activities.contracts:1 -> httpx",
        "workflows.recipe:4 -> workflows.models:1 -> activities.contracts:1 -> httpx",
    ]
    assert found["tikflow.emulator"] == [
        "tikflow.emulator.app:2 -> workflows.models",
        "tikflow.emulator:1 -> tikflow.emulator.app:2 -> workflows.models",
    ]


def test_relative_imports_resolve_against_the_package() -> None:
    found = imports_of("from . import a\nfrom ..b import c\n", "pkg.sub.mod", is_package=False)
    assert [i.target for i in found] == ["pkg.sub", "pkg.sub.a", "pkg.b", "pkg.b.c"]
    assert all(i.module_level for i in found)
