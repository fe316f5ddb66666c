import os

from django.apps import AppConfig


class TestAppConfig(AppConfig):
    name = "tests.testapp"
    label = "testapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        if os.environ.get("DJANGO_JOBS_TEST_SIGNAL_PROBE"):
            from tests.testapp import signal_probe

            signal_probe.connect()
