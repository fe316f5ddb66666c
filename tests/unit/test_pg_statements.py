"""The PostgreSQL statements agree with the constants they are built from: the
NOTIFY channels are named once (engine.pg), and the claimed-job columns are
written once (one missed edit fails here on every database pass, not silently
on PostgreSQL only)."""

from __future__ import annotations

import re
from types import ModuleType

import pytest

from django_jobs.engine import outbox_postgres, postgres


def _statements(module: ModuleType) -> dict[str, str]:
    return {
        name: value
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, str) and "django_jobs_" in value
    }


@pytest.mark.parametrize("module", [postgres, outbox_postgres], ids=lambda m: m.__name__)
def test_every_pg_notify_binds_its_channel(module: ModuleType) -> None:
    calls = {
        name: re.findall(r"pg_notify\(([^,]+),", sql) for name, sql in _statements(module).items()
    }
    notifying = {name: channels for name, channels in calls.items() if channels}
    assert notifying, "the statements that notify were found"
    for name, channels in notifying.items():
        for channel in channels:
            assert re.fullmatch(r"%(\(channel\))?s", channel.strip()), (
                f"{name} names its NOTIFY channel in the SQL ({channel}) instead of "
                "binding engine.pg's constant"
            )
