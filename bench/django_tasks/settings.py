"""Settings for the django.tasks benchmark: the same tasks on one of two backends.

BENCH_DT_BACKEND=jobs      -> django_jobs.backend.JobsBackend (the project's venv)
BENCH_DT_BACKEND=tasksdb   -> django_tasks_db.DatabaseBackend (bench/peers/django-tasks-db venv)
BENCH_DB names the PostgreSQL database; BENCH_CONN_MAX_AGE (seconds) is unset
(Django's default, 0) unless a run asks for persistent connections.
"""

from __future__ import annotations

import os
from typing import Any

SECRET_KEY = "bench-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
BACKEND = os.environ.get("BENCH_DT_BACKEND", "jobs")
INSTALLED_APPS = ["django.contrib.contenttypes"]
DATABASES: dict[str, Any] = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("BENCH_DB", "bench_dt"),
        "USER": os.environ.get("BENCH_PGUSER", "root"),
        "HOST": os.environ.get("BENCH_PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("BENCH_PGPORT", "5432"),
    }
}
if os.environ.get("BENCH_CONN_MAX_AGE"):
    DATABASES["default"]["CONN_MAX_AGE"] = float(os.environ["BENCH_CONN_MAX_AGE"])
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if BACKEND == "jobs":
    INSTALLED_APPS += ["django_jobs"]
    TASKS = {"default": {"BACKEND": "django_jobs.backend.JobsBackend"}}
    # The defaults, plus the task module: the worker runs registered tasks only.
    DJANGO_JOBS: dict[str, Any] = {"TASK_MODULES": ["bench.django_tasks.tasks"]}
elif BACKEND == "tasksdb":
    INSTALLED_APPS += ["django_tasks_db"]
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
else:
    raise RuntimeError(f"BENCH_DT_BACKEND must be jobs or tasksdb, not {BACKEND!r}")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
