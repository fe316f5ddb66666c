"""Sphinx configuration: MyST Markdown pages, API reference from the docstrings.

Built by ``make docs`` with warnings as errors (``-W --keep-going -n``). Why Sphinx
and not MkDocs: docs/index.md, "About these docs".
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "docs" / "_ext")]

# autodoc imports django_jobs.models and friends: Django must be set up first.
# The test settings are the example project's plus a test app, on SQLite by default
# (nothing is queried while building).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

project = "django_jobs"
author = "django_jobs contributors"
copyright = "django_jobs contributors"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "settings_reference",  # docs/_ext: the settings page, generated from django_jobs/conf.py
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3  # [text](page.md#a-heading) links to headings up to ###

# Signatures show the annotations; links resolve for django_jobs' own names.
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_preserve_defaults = True

# Nitpicky mode (-n) reports every cross-reference that does not resolve. There is
# no network here for intersphinx, so references into the standard library, Django
# and typing cannot resolve: they are ignored by module. A broken reference to a
# django_jobs name still fails the build.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(django|datetime|typing|collections|decimal|uuid|enum|psycopg|types)(\..*)?"),
    (r"py:.*", r"(Any|Callable|Iterable|Iterator|Mapping|Sequence|P|R|T|TaskContext)"),
    (r"py:.*", r"(int|str|float|bool|bytes|dict|list|tuple|set|object|type|None)"),
    (r"py:.*", r"(BaseException|Exception|ValueError|TypeError|RuntimeError|TimeoutError)"),
    (r"py:.*", r"(ParamSpec|TypeVar|NamedTuple|dataclasses\..*|logging\..*|threading\..*)"),
    # Type variables and internal types that signatures mention but the API
    # reference (docs/reference/api.md) leaves out on purpose.
    (r"py:class", r"(django_jobs\.tasks\.(R|RowOptions)|P\.args|P\.kwargs)"),
    (r"py:class", r"(django_jobs\.rows\.NewJob|django_jobs\.options\.JobOptions|EventSpec)"),
    (r"py:class", r"Signature"),
]

html_theme = "furo"
html_title = "django_jobs"
html_static_path: list[str] = []
