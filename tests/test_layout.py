"""The shape of the code: no import cycles, layers import downwards, facts declared once.

These walk pagekit's source with :mod:`ast`, so they fail on the line that breaks a rule.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pagekit import contract

PACKAGE = Path(contract.__file__).parent
STATE_NAMES = {s.value for s in contract.PageState} | {s.value for s in contract.JobState}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path) -> set[str]:
    """pagekit modules that ``name`` imports anywhere (functions too), TYPE_CHECKING aside."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            for alias in node.names:  # `from . import tasks` imports a module
                if f"{target}.{alias.name}" in MODULES:
                    found.add(f"{target}.{alias.name}")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    out = set()
    for target in found:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        # Importing a submodule runs its parent packages first; those are not edges.
        if target and target != name and not name.startswith(target + "."):
            out.add(target)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_no_import_cycles_among_pagekit_modules():
    """Every import, lazy ones inside functions included, points one way."""
    cycles = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(GRAPH):
        if node not in state:
            walk(node)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


UPPER = ("pagekit.client", "pagekit.widgets", "pagekit.api", "pagekit.cli", "pagekit.dashboard")
LAYERS = {
    # module prefix: what it must never import (directly or lazily)
    "pagekit.processing": (
        *UPPER,
        "pagekit.store",
        "pagekit.jobs",
        "pagekit.worker",
        "pagekit.tasks",
        "pagekit.celery_app",
        "pagekit.broker",
        "pagekit.runtime",
    ),
    "pagekit.store": (*UPPER, "pagekit.jobs", "pagekit.worker", "pagekit.celery_app"),
    "pagekit.ingest": (*UPPER, "pagekit.store", "pagekit.celery_app"),
    "pagekit.contract": tuple(m for m in MODULES if m != "pagekit.contract"),
    "pagekit.validate": (*UPPER, "pagekit.store", "pagekit.processing"),
    "pagekit.errors": tuple(m for m in MODULES if m != "pagekit.errors"),
}


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_layers_import_only_downwards():
    wrong = [
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        for prefix, banned in LAYERS.items()
        if _under(name, prefix)
        for target in targets
        if any(_under(target, b) for b in banned)
    ]
    assert not wrong, "\n".join(wrong)


def test_only_the_worker_entry_point_imports_celery_app():
    users = [name for name, targets in GRAPH.items() if "pagekit.celery_app" in targets]
    assert users == [], f"modules importing the worker entry point: {users}"


def _third_party_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_processing_imports_neither_celery_nor_sqlalchemy():
    for name, path in MODULES.items():
        if _under(name, "pagekit.processing"):
            assert not {"celery", "kombu", "sqlalchemy"} & _third_party_imports(path), name


def test_sql_is_written_only_in_the_store():
    """Queries live in pagekit.store (tasks.py only names an exception class to retry on)."""
    allowed = ("pagekit.store", "pagekit.tasks")
    writers = [
        name
        for name, path in MODULES.items()
        if "sqlalchemy" in _third_party_imports(path) and not any(_under(name, a) for a in allowed)
    ]
    assert writers == [], f"SQL outside the store: {writers}"


def _literals(path: Path):
    """String constants, except keys read from a shape (``r["failed"]``, ``r.get("failed")``):
    a finished job's ``result`` has count keys named like the states (contract.JobResult)."""
    tree = ast.parse(path.read_text())
    keys = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            keys.add(id(node.slice))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and node.args
        ):
            keys.add(id(node.args[0]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in keys:
            yield node


def test_state_names_are_written_only_in_the_contract():
    """``"pending"`` and friends come from pagekit.contract (docstrings and messages aside)."""
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.value!r}"
        for name, path in MODULES.items()
        if name != "pagekit.contract"
        for node in _literals(path)
        if node.value in STATE_NAMES
    ]
    assert not found, "state literals outside pagekit/contract.py:\n" + "\n".join(found)


def test_page_column_lists_are_declared_only_in_the_contract():
    found = []
    for name, path in MODULES.items():
        if name == "pagekit.contract":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.List, ast.Tuple)):
                words = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                if {"page_number", "status", "words"} <= words:
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not found, "page column lists outside pagekit/contract.py: " + ", ".join(found)


def test_importing_pagekit_builds_no_celery_app_and_reads_no_settings(tmp_path):
    """A malformed setting is reported when a command needs it, never at import time."""
    skip = {"pagekit.celery_app"}  # the worker entry point builds its app on import
    optional = {"pagekit.api": "fastapi", "pagekit.widgets": "ipywidgets"}
    names = [
        n
        for n in MODULES
        if n not in skip
        and not any(_under(n, o) for o in optional)
        and not n.startswith("pagekit.samples.make")
        and not n.endswith("__main__")
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "assert 'pagekit.celery_app' not in sys.modules\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PAGEKIT_WORKERS": "two", "PAGEKIT_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_a_client_loads_no_celery_until_it_talks_to_the_broker(tmp_path):
    """Reading projects and pages needs the database only."""
    code = (
        "import sys, pagekit\n"
        "from pagekit.client import Client\n"
        "print(sorted(m for m in ('celery', 'kombu', 'fastapi') if m in sys.modules))\n"
    )
    env = {**os.environ, "PAGEKIT_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("model", "shape"),
    [
        ("PageQueued", contract.PageQueued),
        ("BatchQueued", contract.BatchQueued),
        ("TaskRunning", contract.StatusRunning),
        ("TaskDone", contract.StatusFinished),
        ("JobResult", contract.JobResult),
        ("PageOutcome", contract.PageOutcome),
        ("CancelRunning", contract.CancelRunning),
        ("CancelDone", contract.CancelFinished),
    ],
)
def test_the_api_schemas_are_the_contract_shapes(model, shape):
    api = pytest.importorskip("pagekit.api", reason="the api extra is not installed")
    fields = set(getattr(api, model).model_fields)
    assert fields == set(shape.__annotations__), f"{model} differs from contract.{shape.__name__}"


def test_nothing_is_pickled_across_processes():
    """JSON only between processes (Celery messages, the PDF renderer's child, the runtime)."""
    users = [name for name, path in MODULES.items() if "pickle" in _third_party_imports(path)]
    assert users == [], f"modules importing pickle: {users}"
