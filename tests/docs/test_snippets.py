"""Every code block of README.md and docs/**/*.md is executed or checked here.

The rules (also in docs/index.md, "About these docs"):

- A ```python block runs (top-level ``await`` included: the block then runs
  under ``asyncio.run``), in the test project (tests/settings.py, tests/testapp),
  on SQLite and on PostgreSQL, inside a test transaction. The blocks of one page
  run in order and share one namespace, so a page may define a task in one block
  and enqueue it in the next. Names a block uses must be imported or defined by
  it or by an earlier block of the page (checked before running, so that a name
  used only inside a function body cannot be forgotten either).
- A line ``# path/to/file.py`` (at the start of a line) says which file the code
  under it belongs to: ``# myapp/tasks.py`` code runs as the module
  ``myapp.tasks`` (importable by the next blocks, with its own namespace, as a
  real file would be). ``myapp.models`` is provided: its ``Order`` is
  tests.testapp's. ``# settings.py`` code is a settings fragment, checked as one.
- A settings fragment (``# settings.py``, or the marker ``<!-- snippet: settings -->``
  right before the block) is executed; its ``DJANGO_JOBS`` (merged over the test
  settings) and ``TASKS`` go through Django's system checks, so an unknown key
  or a bad value fails; each app its ``INSTALLED_APPS`` names must exist; other
  names (``DATABASES``...) are only executed. The page's later blocks run with
  those settings.
- ``<!-- snippet: setup CODE -->`` right before a block runs CODE (hidden from
  readers) before it: stand-ins for the reader's own code.
- ``<!-- snippet: skip reason="..." -->``: not run (the reason is required); the
  block must still compile and its imports must exist.
- ```sh / ```bash / ```console blocks: each ``manage.py COMMAND ...`` (``$ `` lines
  in console blocks) is parsed by that command's real argument parser, so a
  renamed command or option fails; ``make TARGET`` must name a Makefile target;
  ``pip install 'django-dbjobs[EXTRA]'`` must name an extra of pyproject.toml. A
  usage synopsis (``[--opt N]``, or the marker ``<!-- snippet: usage -->``) has
  each ``--option`` it names checked to exist.

A failure names the page and line of the block.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import contextlib
import importlib
import importlib.util
import inspect
import re
import shlex
import sys
import tomllib
import traceback
import types
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core import checks
from django.core.management import CommandError, get_commands, load_command_class
from django.test.utils import override_settings

from tests.conftest import ROOT
from tests.docs.snippets import (
    PYTHON_OPENING,
    Block,
    Part,
    blocks,
    module_name,
    pages,
    parts,
    shell_commands,
)

# Environment variables that settings fragments read (os.environ["..."]).
PLACEHOLDER_ENV = {"BILLING_HOOK_SECRET": "a-secret-shared-with-billing"}
READERS_PACKAGE = "myapp"
# Modules made for the page being run (myapp, myapp.models, "# path.py" parts).
CREATED_MODULES: set[str] = set()


def page_ids() -> list[Any]:
    return [pytest.param(path, id=str(path.relative_to(ROOT))) for path in pages()]


def python_pages() -> list[Any]:
    return [p for p in page_ids() if any(b.lang in {"python", "py"} for b in blocks(p.values[0]))]


def shell_pages() -> list[Any]:
    return [
        p for p in page_ids() if any(b.lang not in {"python", "py"} for b in blocks(p.values[0]))
    ]


# -- static name check ------------------------------------------------------------


def bound_names(tree: ast.AST) -> set[str]:
    """Every name the code binds, in any scope (good enough for short snippets)."""
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


def compile_part(page: str, part: Part) -> types.CodeType:
    # Padding with newlines makes tracebacks and syntax errors show the page's line numbers.
    # Top-level ``await`` is allowed (a page about async tasks); run_part runs such a
    # block with asyncio.run.
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    return compile("\n" * (part.line - 1) + part.source, page, "exec", flags=flags)


def check_names(block: Block, part: Part, known: set[str]) -> None:
    tree = ast.parse(part.source)
    missing = sorted(used_names(tree) - bound_names(tree) - known - set(dir(builtins)))
    if missing:
        pytest.fail(
            f"{block.page}:{part.line}: the block uses {missing} without importing or defining "
            "them (import them, or define stand-ins in a <!-- snippet: setup ... --> comment "
            "before the block; the rules: tests/docs/test_snippets.py)",
            pytrace=False,
        )


def check_imports(block: Block) -> None:
    for node in ast.walk(ast.parse(block.source)):
        # Our names and Django's are checked; optional third-party packages may be absent.
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] not in {"django_jobs", "django"}:
                continue
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name) or importlib.util.find_spec(
                    f"{node.module}.{alias.name}"
                ), f"{block.where}: {node.module} has no {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in {"django_jobs", "django"}:
                    importlib.import_module(alias.name)


# -- running a page -----------------------------------------------------------------


@pytest.fixture
def isolated() -> Iterator[None]:
    """Tasks, subscribers and modules a page defines are forgotten after it."""
    from django_jobs import tasks
    from django_jobs.backend import registry as django_registry
    from django_jobs.observability import sections
    from django_jobs.outbox import subscribers

    saved_tasks = dict(tasks.registry)
    saved_django = dict(django_registry.django_task_registry)
    saved_after = set(tasks.defined_after_setup)
    saved_subscriptions = list(subscribers._subscriptions)
    saved_sections = list(sections.SECTIONS)
    try:
        yield
    finally:
        # Only the modules the harness made (real ones a page imported stay: a
        # second copy of a library module would break isinstance checks).
        for name in CREATED_MODULES:
            sys.modules.pop(name, None)
        CREATED_MODULES.clear()
        tasks.registry.clear()
        tasks.registry.update(saved_tasks)
        django_registry.django_task_registry.clear()
        django_registry.django_task_registry.update(saved_django)
        tasks.defined_after_setup.clear()
        tasks.defined_after_setup.update(saved_after)
        subscribers._subscriptions[:] = saved_subscriptions
        subscribers._by_topic.clear()
        sections.SECTIONS[:] = saved_sections


def provide_readers_package() -> None:
    """``myapp`` and ``myapp.models`` (with tests.testapp's Order), as a reader has them."""
    from tests.testapp.models import Order

    package = types.ModuleType(READERS_PACKAGE)
    package.__path__ = []
    models = types.ModuleType(f"{READERS_PACKAGE}.models")
    models.Order = Order  # type: ignore[attr-defined]
    package.models = models  # type: ignore[attr-defined]
    for module in (package, models):
        sys.modules[module.__name__] = module
        CREATED_MODULES.add(module.__name__)


def module_for(path: str) -> types.ModuleType:
    """The module a ``# path.py`` part runs in (created with its parent packages)."""
    name = module_name(path)
    if name in CREATED_MODULES:
        return sys.modules[name]
    if name in sys.modules:
        raise AssertionError(f"# {path}: {name} is a real module; name a file of your own app")
    parent, _, leaf = name.rpartition(".")
    module = types.ModuleType(name)
    module.__file__ = str(ROOT / path)
    module.__path__ = []  # type: ignore[attr-defined]  # a package too: it may have submodules
    sys.modules[name] = module
    CREATED_MODULES.add(name)
    if parent:
        setattr(module_for(parent.replace(".", "/") + "/__init__.py"), leaf, module)
    return module


def run_part(block: Block, part: Part, namespace: dict[str, Any]) -> None:
    try:
        code = compile_part(block.page, part)
        if code.co_flags & inspect.CO_COROUTINE:
            asyncio.run(eval(code, namespace))
        else:
            exec(code, namespace)
    except Exception as exc:
        # The page's lines first, then the innermost library frames.
        frames = traceback.extract_tb(exc.__traceback__)[1:]
        shown = [f for f in frames if f.filename == block.page]
        shown += [f for f in frames[-3:] if f.filename != block.page]
        pytest.fail(
            f"{block.page}:{part.line}: the block raised {type(exc).__name__}: {exc} (fix the "
            "snippet; the rules: tests/docs/test_snippets.py)\n"
            + "".join(traceback.format_list(shown)),
            pytrace=False,
        )


def check_settings(block: Block, part: Part, stack: contextlib.ExitStack) -> None:
    """Run a settings fragment; its DJANGO_JOBS and TASKS pass the system checks."""
    namespace: dict[str, Any] = {"BASE_DIR": ROOT, "__name__": "settings"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in PLACEHOLDER_ENV.items():
            patch.setenv(name, value)
        run_part(block, part, namespace)
    for app in namespace.get("INSTALLED_APPS", ()):
        if isinstance(app, str):
            assert importlib.util.find_spec(app), f"{block.page}:{part.line}: no app {app!r}"
    overrides: dict[str, Any] = {}
    if "DJANGO_JOBS" in namespace:
        overrides["DJANGO_JOBS"] = {**settings.DJANGO_JOBS, **namespace["DJANGO_JOBS"]}
    if "TASKS" in namespace:
        overrides["TASKS"] = namespace["TASKS"]
    if not overrides:
        return
    stack.enter_context(override_settings(**overrides))
    if "TASKS" in overrides:
        from django.tasks import task_backends

        for alias in overrides["TASKS"]:
            task_backends[alias]  # builds the backend: its OPTIONS are validated
    # All checks but the models' (they query the database about JSON support).
    tags = sorted(set(checks.registry.registry.tags_available()) - {"models", "database"})
    errors = [m for m in checks.run_checks(tags=tags) if m.level >= checks.ERROR]
    assert not errors, f"{block.page}:{part.line}: the settings fail the system checks: {errors}"


def run_page(path: Any) -> int:
    """Run every python block of a page; returns how many parts ran or were checked."""
    provide_readers_package()
    namespace: dict[str, Any] = {"__name__": "docs_snippet"}
    ran = 0
    with contextlib.ExitStack() as stack:
        for block in blocks(path):
            if block.lang not in {"python", "py"}:
                continue
            if block.marker == "skip":
                compile(block.source, block.where, "exec")
                check_imports(block)
                ran += 1
                continue
            if block.setup:
                setup = Part(block.line, None, block.setup)
                run_part(block, setup, namespace)
            for part in parts(block):
                if block.marker == "settings" or part.path == "settings.py":
                    check_settings(block, part, stack)
                elif part.path is not None:
                    module = module_for(part.path)
                    check_names(block, part, set(vars(module)))
                    run_part(block, part, vars(module))
                else:
                    check_names(block, part, set(namespace))
                    run_part(block, part, namespace)
                ran += 1
    return ran


@pytest.mark.django_db
@pytest.mark.parametrize("path", python_pages())
def test_python_blocks_run(path, isolated):
    assert run_page(path) > 0


# -- shell blocks -------------------------------------------------------------------


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([\w-]+):", text, re.M))


def package_extras() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project.get("optional-dependencies", {}))


def command_parser(name: str) -> Any:
    commands = get_commands()
    if name not in commands:
        raise AssertionError(f"there is no manage.py command {name!r}")
    return load_command_class(commands[name], name).create_parser("manage.py", name)


def option_strings(parser: Any) -> set[str]:
    found: set[str] = set()
    for action in parser._actions:
        found.update(action.option_strings)
        choices = getattr(action, "choices", None)
        if isinstance(choices, dict):  # subcommands: their parsers
            for sub in choices.values():
                found |= option_strings(sub)
    return found


def check_manage(tokens: list[str], usage: bool) -> None:
    name, args = tokens[0], tokens[1:]
    parser = command_parser(name)
    if usage or any("[" in arg for arg in args):
        known = option_strings(parser)
        named = {m for arg in args for m in re.findall(r"--[\w-]+", arg)}
        unknown = sorted(named - known)
        assert not unknown, f"manage.py {name} has no option {unknown}"
        return
    try:
        parser.parse_args(args)
    except (CommandError, SystemExit) as exc:
        raise AssertionError(f"manage.py {name} {shlex.join(args)}: {exc}") from None
    # argparse accepts abbreviations (--older for --older-than): the docs spell options out.
    abbreviated = sorted(
        {a.split("=")[0] for a in args if a.startswith("--")} - option_strings(parser)
    )
    assert not abbreviated, f"manage.py {name}: {abbreviated} is not the option's full name"


def pipeline(command: str) -> list[list[str]]:
    """The simple commands of a shell line (split at |, &&, ; outside quotes)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars="|&;")
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token and set(token) <= set("|&;"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [tokens for tokens in commands if tokens]


def check_command(command: str, usage: bool) -> None:
    for tokens in pipeline(command):
        for index, token in enumerate(tokens):
            if token.endswith("manage.py") and index + 1 < len(tokens):
                check_manage(tokens[index + 1 :], usage)
                break
        else:
            if tokens[:1] == ["make"]:
                targets = [t for t in tokens[1:] if "=" not in t and not t.startswith("-")]
                missing = sorted(set(targets) - makefile_targets())
                assert not missing, f"the Makefile has no target {missing}"
            elif tokens[:2] == ["pip", "install"]:
                for token in tokens[2:]:
                    if token.startswith("django-dbjobs["):
                        extras = set(token.split("[")[1].rstrip("]").split(","))
                        missing = sorted(extras - package_extras())
                        assert not missing, f"pyproject.toml has no extra {missing}"


@pytest.mark.parametrize("path", shell_pages())
def test_shell_blocks_name_real_commands_and_options(path):
    failures = []
    for block in blocks(path):
        if block.lang in {"python", "py"} or block.marker == "skip":
            continue
        for line, command in shell_commands(block):
            try:
                check_command(command, block.marker == "usage")
            except AssertionError as exc:
                failures.append(f"{block.page}:{line}: {exc}")
    assert not failures, "\n".join(failures)


# -- the harness itself -------------------------------------------------------------


def test_every_page_with_code_is_covered():
    covered = {p.values[0] for p in python_pages() + shell_pages()}
    with_code = {p for p in pages() if blocks(p)}
    assert with_code == covered
    assert len(blocks(ROOT / "README.md")) >= 5


@pytest.mark.parametrize("path", page_ids())
def test_no_python_block_is_missed(path):
    """Every opening of a python block (indented, ~~~, {code-block}) is one the harness runs."""
    text = path.read_text()
    openings = [text.count("\n", 0, m.start()) + 1 for m in PYTHON_OPENING.finditer(text)]
    found = [b.line for b in blocks(path) if b.lang in {"python", "py"}]
    missed = sorted(set(openings) - set(found))
    assert not missed, (
        f"{path.relative_to(ROOT)}: python blocks the harness cannot read at {missed}"
    )


def test_an_indented_block_is_found_and_dedented(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("- item\n\n  ```python\n  x = 1\n  ```\n")
    (block,) = blocks(page, root=tmp_path)
    assert (block.line, block.source) == (3, "x = 1\n")


def test_a_file_part_runs_as_its_module(isolated):
    source = "# shop/tasks.py\nX = 1\n\n# shop/views.py\nfrom shop.tasks import X\n"
    block = Block("page.md", 1, "python", source)
    for part in parts(block):
        assert part.path is not None
        run_part(block, part, vars(module_for(part.path)))
    assert sys.modules["shop.views"].X == 1 and sys.modules["shop"].tasks.X == 1


def test_a_block_may_await_at_top_level():
    block = Block("page.md", 1, "python", "import asyncio\nawait asyncio.sleep(0)\ndone = True\n")
    namespace: dict[str, Any] = {}
    run_part(block, parts(block)[0], namespace)
    assert namespace["done"] is True


def test_a_renamed_option_fails():
    check_command("python manage.py prunejobs --older-than 30d --dry-run", usage=False)
    with pytest.raises(AssertionError, match="prunejobs"):
        check_command("python manage.py prunejobs --older 30d", usage=False)
    with pytest.raises(AssertionError, match="--concurency"):
        check_command("python manage.py runworker [--concurency 10]", usage=False)
    with pytest.raises(AssertionError, match=r"no manage\.py command"):
        check_command("$ python manage.py runwork", usage=False)


def test_the_name_check_catches_a_missing_import():
    block = Block(
        "page.md", 1, "python", "@require_POST\ndef view(request): return timezone.now()\n"
    )
    with pytest.raises(pytest.fail.Exception, match=r"page.md:2: .*\['require_POST', 'timezone'\]"):
        check_names(block, parts(block)[0], set())


def test_a_block_that_raises_names_its_page_and_line():
    block = Block("page.md", 10, "python", "x = 1\n1 / 0\n")
    with pytest.raises(pytest.fail.Exception, match=r"page.md:11: the block raised ZeroDivision"):
        run_part(block, parts(block)[0], {})
