"""Test settings for ``--database``: the real test database is the alias "second"; "default"
is an empty, unmigrated SQLite file (DJANGO_JOBS_TEST_EMPTY_DB), so anything that
ignores the alias fails loudly."""

from __future__ import annotations

import os

from example_project.settings import database_config
from tests.settings import *  # noqa: F403
from tests.settings import DATABASES as TEST_DATABASES

DATABASES = {
    "default": database_config(f"sqlite:///{os.environ['DJANGO_JOBS_TEST_EMPTY_DB']}"),
    "second": TEST_DATABASES["default"],
}
