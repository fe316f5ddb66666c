"""Test settings whose LOGGING configures the root logger only (DJANGO_JOBS_TEST_LOGGING=root),
or nothing at all (=none): runworker must print each log line exactly once."""

from __future__ import annotations

import os
from typing import Any

from tests.settings import *  # noqa: F403

LOGGING: dict[str, Any] = {}
if os.environ.get("DJANGO_JOBS_TEST_LOGGING", "root") == "root":
    LOGGING = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"marked": {"format": "PROJECT %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "marked"}},
        "root": {"handlers": ["console"], "level": "INFO"},
    }
