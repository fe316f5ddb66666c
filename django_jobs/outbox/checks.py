"""System checks for the outbox: publisher settings fail ``manage.py check``,
not the first delivery at 3 a.m."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

from django_jobs.outbox.publishers import get_publishers, reset_publishers


@register(Tags.compatibility)
def check_publishers(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    reset_publishers()  # build from the current settings
    try:
        get_publishers()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="django_jobs.E010")]
    finally:
        reset_publishers()  # connections are opened lazily by the worker, not by checks
    return []
