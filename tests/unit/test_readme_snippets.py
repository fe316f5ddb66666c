"""Every ```python snippet in README.md compiles, uses only names it imports or defines,
and imports only what exists: a reader can paste each one as written."""

from __future__ import annotations

import ast
import builtins
import importlib
import importlib.util
import re

import pytest

from tests.conftest import ROOT

# Stand-ins for the reader's own code, named as such in the snippets.
PLACEHOLDERS = {"BASE_DIR", "partner_is_down", "order_was_deleted"}
READERS_PACKAGE = "myapp"  # the reader's app: its modules do not exist here


def snippets() -> list[tuple[int, str]]:
    """(first line, source) of every ```python block."""
    text = (ROOT / "README.md").read_text()
    return [
        (text.count("\n", 0, match.start()) + 2, match.group(1))
        for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M)
    ]


def snippet_params() -> list[object]:
    return [pytest.param(line, source, id=f"README.md:{line}") for line, source in snippets()]


def bound_names(tree: ast.AST) -> set[str]:
    """Every name the snippet binds, in any scope (good enough for short snippets)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def used_names(tree: ast.AST) -> set[str]:
    return {
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    }


def test_the_readme_has_python_snippets():
    assert len(snippets()) >= 10


@pytest.mark.parametrize(("line", "source"), snippet_params())
def test_snippet_uses_only_names_it_imports_or_defines(line, source):
    tree = compile(source, f"README.md:{line}", "exec", ast.PyCF_ONLY_AST)
    known = bound_names(tree) | set(dir(builtins)) | PLACEHOLDERS
    missing = sorted(used_names(tree) - known)
    assert not missing, f"README.md snippet at line {line} uses {missing} without importing them"


@pytest.mark.parametrize(("line", "source"), snippet_params())
def test_snippet_imports_exist(line, source):
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] == READERS_PACKAGE:
                continue
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name) or importlib.util.find_spec(
                    f"{node.module}.{alias.name}"
                ), f"README.md snippet at line {line}: {node.module} has no {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)


def test_the_checker_catches_a_missing_import():
    tree = ast.parse("@require_POST\ndef view(request): return timezone.now()\n")
    assert used_names(tree) - bound_names(tree) - set(dir(builtins)) == {
        "require_POST",
        "timezone",
    }
