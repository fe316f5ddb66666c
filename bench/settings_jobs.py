"""Django settings for the django_jobs side of the benchmark (database from BENCH_DB)."""

from __future__ import annotations

import json
import os

SECRET_KEY = "bench-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
# bench.clients: its tasks.py holds the bench tasks, imported by the worker at start-up.
INSTALLED_APPS = ["django.contrib.contenttypes", "django_jobs", "bench.clients"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("BENCH_DB", "bench_jobs"),
        "USER": os.environ.get("BENCH_PGUSER", "root"),
        "HOST": os.environ.get("BENCH_PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("BENCH_PGPORT", "5432"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The defaults; BENCH_DJANGO_JOBS='{"KEY": value}' overrides some for A/B runs.
DJANGO_JOBS: dict[str, object] = json.loads(os.environ.get("BENCH_DJANGO_JOBS", "{}"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_jobs": {"handlers": ["console"], "level": "WARNING"}},
}
