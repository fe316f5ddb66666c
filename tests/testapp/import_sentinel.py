"""A module no task lives in: importing it leaves a marker file.

The registry tests name it in a job row to prove that the worker never
imports a module because a row names it.
"""

from __future__ import annotations

import os
from pathlib import Path

_marker = os.environ.get("DJANGO_JOBS_TEST_IMPORT_MARKER")
if _marker:
    Path(_marker).write_text("imported")


def anything(*args: object) -> None:
    """A plain function, not a task: the worker must not call it."""
