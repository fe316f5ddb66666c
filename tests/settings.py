"""Test settings: the example project plus a test app, on SQLite or PostgreSQL.

DJANGO_JOBS_TEST_DB=sqlite|postgres picks the database (default sqlite);
DATABASE_URL points at PostgreSQL (default postgres://root@127.0.0.1:5432/test).
Worker subprocesses get DJANGO_JOBS_TEST_DB_NAME: the already-created test
database, used as is.
"""

from __future__ import annotations

import json
import os

from example_project.settings import *  # noqa: F403
from example_project.settings import BASE_DIR, INSTALLED_APPS, database_config

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]

TEST_DB = os.environ.get("DJANGO_JOBS_TEST_DB", "sqlite")
ARTIFACTS = BASE_DIR / "tests" / "artifacts"
ARTIFACTS.mkdir(exist_ok=True)

# A second alias, "jobs", on the same server (PostgreSQL) or in another file
# (SQLite), for tests of jobs stored outside "default". pytest-django creates
# and migrates it only when a collected test declares it
# (databases={"default", "jobs"}), so other runs do not pay for it.
if TEST_DB == "postgres":
    default = database_config(os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/test"))
    jobs = {**default, "NAME": f"{default['NAME']}_jobs"}
    jobs["TEST"] = {"NAME": f"test_{jobs['NAME']}"}
    DATABASES = {"default": default, "jobs": jobs}
elif TEST_DB == "sqlite":
    DATABASES = {
        "default": database_config(f"sqlite:///{ARTIFACTS / 'base.sqlite3'}"),
        "jobs": database_config(f"sqlite:///{ARTIFACTS / 'base-jobs.sqlite3'}"),
    }
    # Files, not :memory:, so that worker subprocesses share them.
    DATABASES["default"]["TEST"] = {"NAME": str(ARTIFACTS / "test.sqlite3")}
    DATABASES["jobs"]["TEST"] = {"NAME": str(ARTIFACTS / "test-jobs.sqlite3")}
else:
    raise RuntimeError(f"DJANGO_JOBS_TEST_DB must be sqlite or postgres, not {TEST_DB!r}")

if os.environ.get("DJANGO_JOBS_TEST_NAME_SUFFIX"):
    # An inner pytest run started by a test (tests/testing/test_fixtures.py):
    # its own test databases, beside the outer run's.
    suffix = os.environ["DJANGO_JOBS_TEST_NAME_SUFFIX"]
    for config in DATABASES.values():
        name = config.get("TEST", {}).get("NAME") or f"test_{config['NAME']}"
        config["TEST"] = {"NAME": f"{name}{suffix}"}

if os.environ.get("DJANGO_JOBS_TEST_DB_NAME"):
    # A worker subprocess: use the test databases the test run created.
    DATABASES["default"]["NAME"] = os.environ["DJANGO_JOBS_TEST_DB_NAME"]
    DATABASES["jobs"]["NAME"] = DATABASES["jobs"]["TEST"]["NAME"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DJANGO_JOBS = {
    "BACKOFF_BASE": 0.2,
    "POLL_INTERVAL": float(os.environ.get("DJANGO_JOBS_TEST_POLL", "0.2")),
    "LEASE_SECONDS": float(os.environ.get("DJANGO_JOBS_TEST_LEASE", "30")),
    "HEARTBEAT_INTERVAL": float(os.environ.get("DJANGO_JOBS_TEST_HEARTBEAT", "5")),
    "RECOVERY_INTERVAL": float(os.environ.get("DJANGO_JOBS_TEST_RECOVERY", "10")),
    "CANCEL_GRACE": float(os.environ.get("DJANGO_JOBS_TEST_CANCEL_GRACE", "5")),
    "PRUNE_INTERVAL": float(os.environ.get("DJANGO_JOBS_TEST_PRUNE_INTERVAL", "600")),
    "PRUNE_BATCH_SIZE": int(os.environ.get("DJANGO_JOBS_TEST_PRUNE_BATCH", "1000")),
    "USE_NOTIFY": os.environ.get("DJANGO_JOBS_TEST_USE_NOTIFY", "1") == "1",
    "PREPARED_STATEMENTS": os.environ.get("DJANGO_JOBS_TEST_PREPARED", "1") == "1",
    # Task modules that are not an app's tasks.py (the worker runs registered tasks only).
    "TASK_MODULES": [
        "tests.testapp.async_tasks",
        "tests.testapp.dtasks",
        "tests.testapp.subscribers",
        "tests.testapp.flow_tasks",
    ],
    # Queue-wide flow control (tests/e2e/test_flow_control.py); no other test uses it.
    "QUEUES": {"capped": {"CONCURRENCY": 2}},
    "CIRCUITS": {"test-circuit": {"FAILURES": 5, "WINDOW": 60, "COOLDOWN": 2}},
}
TASKS = {
    "default": {
        "BACKEND": "django_jobs.backend.JobsBackend",
        "QUEUES": ["default", "reports", "other"],
    }
}
if os.environ.get("DJANGO_JOBS_TEST_OUTBOX_PUBLISHERS"):
    # Worker subprocesses of the outbox tests get their publishers (local HTTP
    # server, RabbitMQ queue) as JSON.
    DJANGO_JOBS["OUTBOX_PUBLISHERS"] = json.loads(os.environ["DJANGO_JOBS_TEST_OUTBOX_PUBLISHERS"])
if os.environ.get("DJANGO_JOBS_TEST_SCHEDULES"):
    # Worker subprocesses of the schedule tests get their schedules as JSON.
    DJANGO_JOBS["SCHEDULES"] = json.loads(os.environ["DJANGO_JOBS_TEST_SCHEDULES"])
if os.environ.get("DJANGO_JOBS_TEST_ALERTS"):
    # Worker subprocesses of the alert tests get their rules as JSON, a short
    # evaluation interval, and a file-based mailbox the test counts.
    DJANGO_JOBS["ALERTS"] = json.loads(os.environ["DJANGO_JOBS_TEST_ALERTS"])
    DJANGO_JOBS["ALERT_INTERVAL"] = float(os.environ.get("DJANGO_JOBS_TEST_ALERT_INTERVAL", "30"))
if os.environ.get("DJANGO_JOBS_TEST_EMAIL_DIR"):
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = os.environ["DJANGO_JOBS_TEST_EMAIL_DIR"]
    ADMINS = ["ops@example.com"]
if os.environ.get("DJANGO_JOBS_TEST_OTEL_SPANS"):
    # Worker subprocesses of the tracing tests export their spans to this
    # JSON-lines file (an OpenTelemetry SDK provider, set before Django starts).
    from tests.testapp.otel import export_to_file

    export_to_file(os.environ["DJANGO_JOBS_TEST_OTEL_SPANS"])
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_jobs": {"handlers": ["console"], "level": "WARNING"}},
}
