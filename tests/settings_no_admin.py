"""Test settings of a project without django.contrib.admin (an API-only service):
the worker, its alerts and the metrics view must not need the admin."""

from __future__ import annotations

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "django.contrib.admin"]
MIDDLEWARE = [m for m in MIDDLEWARE if "messages" not in m]
ROOT_URLCONF = "django_jobs.urls"
