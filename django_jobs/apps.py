from __future__ import annotations

import importlib

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured

from django_jobs.conf import jobs_settings


class DjangoJobsConfig(AppConfig):
    name = "django_jobs"
    verbose_name = "Jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registration only: system checks, the built-in delivery task, each
        # installed app's tasks module and DJANGO_JOBS["TASK_MODULES"], so that the
        # task registries are filled before the worker claims anything (it runs
        # registered tasks only). Imported here, in ready(): the app registry is
        # loaded, so these modules may import the models.
        from django.utils.module_loading import autodiscover_modules

        from django_jobs import checks  # noqa: F401
        from django_jobs.alerts import checks as alert_checks  # noqa: F401
        from django_jobs.flow import checks as flow_checks  # noqa: F401
        from django_jobs.outbox import checks as outbox_checks  # noqa: F401
        from django_jobs.outbox import delivery  # noqa: F401 - registers the built-in task
        from django_jobs.scheduling import checks as schedule_checks  # noqa: F401

        autodiscover_modules("tasks")
        for module in task_modules(jobs_settings.TASK_MODULES):
            importlib.import_module(module)


def task_modules(value: object) -> list[str]:
    """``DJANGO_JOBS["TASK_MODULES"]`` checked: a list of dotted module paths."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ImproperlyConfigured(
            f'DJANGO_JOBS["TASK_MODULES"] must be a list of module paths, got {value!r}'
        )
    for item in value:
        if not isinstance(item, str) or not item:
            raise ImproperlyConfigured(
                f'DJANGO_JOBS["TASK_MODULES"] must contain module paths, got {item!r}'
            )
    return list(value)
