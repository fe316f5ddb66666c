"""``-p tests.testing.load_plugin``: register the jobs fixtures unless the
installed distribution's pytest11 entry point did already."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    import django_jobs.pytest_plugin as jobs_plugin  # registered below, if needed

    if not config.pluginmanager.has_plugin("django_jobs"):
        config.pluginmanager.register(jobs_plugin, "django_jobs")
