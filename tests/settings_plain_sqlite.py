"""Test settings with a SQLite database lacking transaction_mode='IMMEDIATE' (check W001).

On SQLite the test database itself loses the option; on PostgreSQL an extra
SQLite alias (an unused file) carries the mistake."""

from __future__ import annotations

from example_project.settings import BASE_DIR
from tests.settings import *  # noqa: F403
from tests.settings import DATABASES

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"].pop("transaction_mode")
else:
    DATABASES["plain"] = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(BASE_DIR / "tests" / "artifacts" / "plain.sqlite3"),
    }
