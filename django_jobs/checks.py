"""System checks: configuration mistakes become ``manage.py check`` errors."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db.utils import load_backend

from django_jobs.conf import jobs_settings


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for key in jobs_settings.unknown_keys():
        messages.append(Error(f"DJANGO_JOBS has an unknown key {key!r}.", id="django_jobs.E001"))
    lease = float(jobs_settings.LEASE_SECONDS)
    beat = float(jobs_settings.HEARTBEAT_INTERVAL)
    if beat * 2 > lease:
        messages.append(
            Error(
                f"DJANGO_JOBS HEARTBEAT_INTERVAL ({beat:g}s) must be at most half of "
                f"LEASE_SECONDS ({lease:g}s), or live jobs would be recovered as dead.",
                id="django_jobs.E002",
            )
        )
    messages += check_metrics_token()
    messages += check_eager()
    return messages


def check_eager() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    mode = jobs_settings.EAGER_EXCEPTIONS
    if mode not in ("propagate", "store"):
        messages.append(
            Error(
                f'DJANGO_JOBS EAGER_EXCEPTIONS must be "propagate" or "store", got {mode!r}.',
                id="django_jobs.E031",
            )
        )
    if jobs_settings.EAGER and not settings.DEBUG:
        messages.append(
            Warning(
                "DJANGO_JOBS EAGER is on while DEBUG is False: every job runs inside the "
                "request (or command) that enqueued it, not on a worker.",
                hint="Eager mode is for tests and local development; turn it off in production.",
                id="django_jobs.W030",
            )
        )
    return messages


# A bearer token shorter than this is guessable by a scraper that tries.
MIN_METRICS_TOKEN = 32


def check_metrics_token() -> list[CheckMessage]:
    token = jobs_settings.METRICS_TOKEN
    if token is None:
        return []
    if not isinstance(token, str) or len(token) < MIN_METRICS_TOKEN:
        length = len(token) if isinstance(token, str) else type(token).__name__
        return [
            Error(
                f"DJANGO_JOBS METRICS_TOKEN must be a string of at least {MIN_METRICS_TOKEN} "
                f"characters, got {length}.",
                hint="Generate one: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                id="django_jobs.E020",
            )
        ]
    return []


# Not Tags.database: those run only with `check --database`, and this one needs no
# connection (the vendor is a class attribute of the backend), so that plain
# `manage.py check` and runworker's start-up checks show it.
@register(Tags.compatibility)
def check_sqlite(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for alias, config in settings.DATABASES.items():
        if load_backend(config["ENGINE"]).DatabaseWrapper.vendor != "sqlite":
            continue
        if (config.get("OPTIONS") or {}).get("transaction_mode") != "IMMEDIATE":
            messages.append(
                Warning(
                    f"Database {alias!r} is SQLite without transaction_mode='IMMEDIATE'.",
                    hint="Set OPTIONS={'transaction_mode': 'IMMEDIATE', 'timeout': 20, "
                    "'init_command': 'PRAGMA journal_mode=WAL;'} so the worker and the web "
                    "server never hit 'database is locked'.",
                    id="django_jobs.W001",
                )
            )
    return messages
