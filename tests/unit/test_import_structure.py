"""The layout's rules, checked on the source (no import is executed):

- no import cycle between django_jobs modules at module level
  (``if TYPE_CHECKING:`` imports are for type hints only and do not count);
- every import inside a function carries a comment saying why, on its line or
  the line above (the usual reasons: the models need the app registry; an
  optional dependency such as psycopg);
- the leaf modules (``rows``, ``codec``, ``exceptions``, ``status``,
  ``backoff``) import nothing of django_jobs;
- no module is longer than ``MAX_MODULE_LINES``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "django_jobs"
LEAVES = {"django_jobs.rows", "django_jobs.codec", "django_jobs.exceptions", "django_jobs.status"}
LEAVES |= {"django_jobs.backoff"}
MAX_MODULE_LINES = 500


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The django_jobs modules an import statement loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".")
            if MODULES[module].name != "__init__.py":
                package = package[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    return [name for name in names if name in MODULES]


def _typing_only(tree: ast.Module) -> set[int]:
    ids = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            ids |= {id(child) for child in ast.walk(node)}
    return ids


def _commented(lines: list[str], at: int) -> bool:
    """Line ``at`` (0-based) has a comment, or so does the line above its run of imports."""
    if "#" in lines[at]:
        return True
    above = at - 1
    while above >= 0 and lines[above].strip().startswith(("from ", "import ")):
        above -= 1
    return above >= 0 and lines[above].strip().startswith("#")


def _scan() -> tuple[dict[str, set[str]], list[str], dict[str, int]]:
    graph: dict[str, set[str]] = {}
    uncommented: list[str] = []
    lengths: dict[str, int] = {}
    for module, path in MODULES.items():
        source = path.read_text()
        lines = source.splitlines()
        lengths[module] = len(lines)
        tree = ast.parse(source)
        typing_only = _typing_only(tree)
        top_level = {id(node) for node in tree.body}
        graph[module] = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or id(node) in typing_only:
                continue
            if id(node) in top_level:
                graph[module].update(t for t in _targets(module, node) if t != module)
                continue
            if not _commented(lines, node.lineno - 1):
                uncommented.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return graph, uncommented, lengths


GRAPH, UNCOMMENTED, LENGTHS = _scan()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
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
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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


def test_no_import_cycle_at_module_level():
    assert _cycles(GRAPH) == []


def test_the_checker_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_every_function_level_import_says_why():
    assert UNCOMMENTED == []


def test_leaf_modules_import_nothing_of_django_jobs():
    assert {leaf: GRAPH[leaf] for leaf in LEAVES if GRAPH[leaf]} == {}


def test_no_module_is_too_long():
    long = {module: n for module, n in LENGTHS.items() if n > MAX_MODULE_LINES}
    assert long == {}, f"over {MAX_MODULE_LINES} lines: split by concern"


def test_only_the_admin_imports_the_admin():
    """jobs status, the metrics, the alerts and the worker run without
    django.contrib.admin (tests/e2e/test_without_admin.py)."""

    def in_admin(name: str) -> bool:
        return name == "django_jobs.admin" or name.startswith("django_jobs.admin.")

    outside = {
        module: sorted(t for t in targets if in_admin(t))
        for module, targets in GRAPH.items()
        if not in_admin(module)
    }
    assert {module: t for module, t in outside.items() if t} == {}


def test_the_package_exports_exactly_its_lazy_public_names():
    import django_jobs  # here, not at the top: the other tests read files, not modules

    assert set(django_jobs.__all__) == set(django_jobs._LAZY)
    assert len(django_jobs.__all__) == len(set(django_jobs.__all__))
    for name in django_jobs.__all__:
        assert getattr(django_jobs, name) is not None
