"""Extract the code blocks of README.md and docs/**/*.md (used by test_snippets.py).

The rules a page follows are described in tests/docs/test_snippets.py and in
docs/index.md ("About these docs").
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from pathlib import Path

from tests.conftest import ROOT

PYTHON = {"python", "py"}
SHELL = {"sh", "bash", "console", "shell"}

# A fenced block at the start of a line: ```lang ... ``` (MyST directives such as
# ```{toctree} are not code and are left alone).
# A fence may be indented (in a list item): its body is dedented.
FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.S | re.M
)
# Anything that looks like the start of a Python code block, however written:
# each must be one of the blocks found above (test_snippets.py checks).
PYTHON_OPENING = re.compile(
    r"^[ ]*(?:```|~~~)[ ]*(?:python|py|\{code-block\}[ ]*python|\{code\}[ ]*python)\b", re.M
)
# A marker: an HTML comment right before the block (blank lines allowed between).
MARKER = re.compile(r"<!--\s*snippet:\s*(?P<kind>[\w-]+)(?P<rest>.*?)-->\s*\Z", re.S)
REASON = re.compile(r'^\s*reason="(?P<reason>[^"]+)"\s*$', re.S)
# A line naming the file a part of a block belongs to: "# myapp/tasks.py",
# "# settings.py  (a comment may follow)". It starts a new part of the block.
FILE_COMMENT = re.compile(r"^# (?P<path>[\w./-]+\.py)\b.*$", re.M)

KINDS = {"settings", "skip", "setup", "usage"}


@dataclasses.dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # the line of the opening fence
    lang: str
    source: str
    marker: str | None = None  # "settings", "skip", "usage" or None
    reason: str = ""
    setup: str = ""  # code of a <!-- snippet: setup ... --> right before the block

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


@dataclasses.dataclass(frozen=True)
class Part:
    """A piece of a python block: the code of one file, or of the page's namespace."""

    line: int  # first line of the part in the page
    path: str | None  # "myapp/tasks.py", "settings.py" or None (the page's namespace)
    source: str


def pages() -> list[Path]:
    docs = sorted(p for p in (ROOT / "docs").rglob("*.md") if "_build" not in p.parts)
    return [ROOT / "README.md", *docs]


def marker_before(text: str, start: int) -> tuple[str | None, str]:
    """(kind, the rest of the comment) of a snippet marker right before ``start``."""
    before = text[:start].rstrip()
    if not before.endswith("-->"):
        return None, ""
    opening = before.rfind("<!--")
    match = MARKER.match(before[opening:]) if opening >= 0 else None
    if match is None:
        return None, ""
    return match.group("kind"), match.group("rest")


def blocks(path: Path, root: Path = ROOT) -> list[Block]:
    text = path.read_text()
    page = str(path.relative_to(root))
    found: list[Block] = []
    for match in FENCE.finditer(text):
        lang = match.group("lang").lower()
        if lang not in PYTHON | SHELL:
            continue
        line = text.count("\n", 0, match.start()) + 1
        kind, rest = marker_before(text, match.start())
        reason = setup = ""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"{page}:{line}: unknown snippet marker {kind!r}; known: {KINDS}")
        if kind == "skip":
            reason_match = REASON.match(rest)
            if reason_match is None:
                raise ValueError(f'{page}:{line}: <!-- snippet: skip --> needs reason="..."')
            reason = reason_match.group("reason")
        if kind == "setup":
            setup, kind = rest.strip("\n"), None
        body = textwrap.dedent(match.group("body"))
        found.append(Block(page, line, lang, body, kind, reason=reason, setup=setup))
    return found


def parts(block: Block) -> list[Part]:
    """Split a python block at its file-name comments."""
    starts = [m.start() for m in FILE_COMMENT.finditer(block.source)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    result = []
    for begin, end in zip(starts, [*starts[1:], len(block.source)], strict=True):
        source = block.source[begin:end]
        named = FILE_COMMENT.match(source)
        line = block.line + 1 + block.source.count("\n", 0, begin)
        result.append(Part(line, named.group("path") if named else None, source))
    return result


def module_name(path: str) -> str:
    """The module of a file: myapp/tasks.py is myapp.tasks, myapp/__init__.py is myapp."""
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def shell_commands(block: Block) -> list[tuple[int, str]]:
    """(line, command) of each command in a shell block.

    In a ```console block the commands are the lines after "$ " (the rest is
    output); in ```sh/```bash every line is a command. A trailing backslash
    continues the command on the next line.
    """
    commands: list[tuple[int, str]] = []
    pending = ""
    first = 0
    for offset, raw in enumerate(block.source.splitlines()):
        line = block.line + 1 + offset
        if not pending:
            if block.lang == "console":
                if not raw.startswith("$ "):
                    continue
                raw = raw[2:]
            first = line
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        command = (pending + raw).strip()
        pending = ""
        if command and not command.startswith("#"):
            commands.append((first, command))
    return commands
