"""The settings reference is generated from django_jobs/conf.py: every setting
appears in it, with its default and an explanation (the comment above the key)."""

from __future__ import annotations

import sys

from django_jobs.conf import DEFAULTS
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "docs" / "_ext"))

from settings_reference import settings_table  # docs/_ext is not a package: on sys.path above


def test_every_setting_is_documented_with_its_default():
    rows = settings_table()
    assert [row.name for row in rows] == list(DEFAULTS)
    undocumented = [row.name for row in rows if len(row.doc) < 10]
    assert not undocumented, f"settings without a comment in django_jobs/conf.py: {undocumented}"
    assert {row.name: row.default for row in rows} == DEFAULTS


def test_a_key_without_a_comment_is_reported():
    source = 'DEFAULTS = {\n    # Documented.\n    "A": 1,\n    "B": 2,\n}\n'
    rows = settings_table(source)
    assert [(row.name, row.doc) for row in rows] == [("A", "Documented."), ("B", "")]
