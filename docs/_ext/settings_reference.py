"""The settings reference, generated from ``django_jobs/conf.py`` so it cannot drift.

``DEFAULTS`` in conf.py is the one list of settings: each key is preceded by the
comment lines that explain it. :func:`settings_table` reads the module's source
(tokens, for the comments) and its values (import, for the defaults) and returns
one row per key; the ``{django-jobs-settings}`` directive renders the rows, and
``tests/docs/test_settings_reference.py`` checks that every key has an
explanation.
"""

from __future__ import annotations

import ast
import io
import pprint
import tokenize
from pathlib import Path
from typing import Any, NamedTuple

from docutils import nodes
from docutils.parsers.rst import Directive

CONF = Path(__file__).resolve().parents[2] / "django_jobs" / "conf.py"


class Setting(NamedTuple):
    name: str
    default: Any
    doc: str  # the comment lines above the key, joined
    section: str  # the last "# -- title ---" comment above it, or ""


def _comments_by_line(source: str) -> dict[int, str]:
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {tok.start[0]: tok.string for tok in tokens if tok.type == tokenize.COMMENT}


def settings_table(source: str | None = None) -> list[Setting]:
    """One :class:`Setting` per key of ``DEFAULTS``, in source order."""
    from django_jobs.conf import DEFAULTS  # the values, as Python sees them

    source = CONF.read_text() if source is None else source
    comments = _comments_by_line(source)
    tree = ast.parse(source)
    literal = next(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.AnnAssign | ast.Assign)
        and isinstance(node.value, ast.Dict)
        and "DEFAULTS"
        in ast.unparse(node.targets[0] if isinstance(node, ast.Assign) else node.target)
    )
    rows: list[Setting] = []
    section = ""
    previous_end = literal.lineno
    for key in literal.keys:
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            raise ValueError(
                f"conf.py line {getattr(key, 'lineno', '?')}: DEFAULTS keys must be strings"
            )
        lines: list[str] = []
        for number in range(previous_end + 1, key.lineno):
            text = comments.get(number, "").lstrip("#").strip()
            if text.startswith("--"):
                section, lines = text.strip("- ").strip(), []
            elif text:
                lines.append(text)
        value = DEFAULTS.get(key.value)
        rows.append(Setting(key.value, value, " ".join(lines), section))
        previous_end = literal.values[literal.keys.index(key)].end_lineno or key.lineno
    return rows


UNITS = ((86400, "day"), (3600, "hour"))


def format_default(value: Any) -> str:
    """The default as Python writes it, with whole days or hours spelled out."""
    text = pprint.pformat(value, width=60)
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 3600:
        for size, unit in UNITS:
            if value % size == 0:
                count = int(value // size)
                return f"{text} ({count} {unit}{'s' if count > 1 else ''})"
    return text


class SettingsDirective(Directive):
    """``{django-jobs-settings}``: a definition list of every DJANGO_JOBS setting."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        self.state.document.settings.record_dependencies.add(str(CONF))
        out: list[nodes.Node] = []
        current = None
        items = nodes.definition_list()
        for row in settings_table():
            if row.section != current:
                if len(items):
                    out.append(items)
                    items = nodes.definition_list()
                if row.section:
                    title = nodes.rubric(text=row.section[:1].upper() + row.section[1:])
                    out.append(title)
                current = row.section
            term = nodes.term()
            term += nodes.literal(text=row.name)
            term += nodes.Text(" = ")
            term += nodes.literal(text=format_default(row.default))
            body = nodes.definition()
            # The comments use reStructuredText inline markup (``code``): parse it.
            text, messages = self.state.inline_text(row.doc, self.lineno)
            paragraph = nodes.paragraph()
            paragraph += text
            body += paragraph
            body += messages
            item = nodes.definition_list_item()
            item += term
            item += body
            items += item
        if len(items):
            out.append(items)
        return out


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("django-jobs-settings", SettingsDirective)
    return {"parallel_read_safe": True, "version": "1"}
