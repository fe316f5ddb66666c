"""Django settings for the Django-based peers (BENCH_PEER=djangoq|tasksdb, BENCH_DB).

Each peer runs on its defaults; only what it needs to run at all is set.
"""

from __future__ import annotations

import os

SECRET_KEY = "bench-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
PEER = os.environ.get("BENCH_PEER", "tasksdb")
INSTALLED_APPS = ["django.contrib.contenttypes"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("BENCH_DB", "bench_peer"),
        "USER": os.environ.get("BENCH_PGUSER", "root"),
        "HOST": os.environ.get("BENCH_PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("BENCH_PGPORT", "5432"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
if PEER == "djangoq":
    INSTALLED_APPS += ["django_q"]
    # The ORM broker; "workers" is the number of worker processes measured.
    Q_CLUSTER = {
        "name": "bench",
        "orm": "default",
        "workers": int(os.environ.get("BENCH_WORKERS", "1")),
    }
elif PEER == "tasksdb":
    INSTALLED_APPS += ["django_tasks_db"]
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
else:
    raise RuntimeError(f"BENCH_PEER must be djangoq or tasksdb, not {PEER!r}")
