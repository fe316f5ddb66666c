from __future__ import annotations

from django.apps import AppConfig


class DjangoJobsConfig(AppConfig):
    name = "django_jobs"
    verbose_name = "Jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registration only: system checks, and each installed app's tasks module
        # so that @task registries are filled before the worker claims anything.
        from django.utils.module_loading import autodiscover_modules

        from django_jobs import checks  # noqa: F401
        from django_jobs.outbox import checks as outbox_checks  # noqa: F401

        autodiscover_modules("tasks")
