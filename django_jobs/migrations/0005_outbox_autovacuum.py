"""The jobs table's autovacuum settings (0004) for the outbox table too (PostgreSQL only).

Outbox events turn over like jobs: inserted, updated when the relay
dispatches them, deleted by pruning; every dispatch leaves a dead entry in
the relay's partial index of PENDING events.
"""

from __future__ import annotations

import importlib
from typing import Any

from django.db import migrations

set_autovacuum = importlib.import_module("django_jobs.migrations.0004_job_autovacuum").set_autovacuum


def forwards(apps: Any, schema_editor: Any) -> None:
    set_autovacuum(apps, schema_editor, "OutboxEvent", reset=False)


def backwards(apps: Any, schema_editor: Any) -> None:
    set_autovacuum(apps, schema_editor, "OutboxEvent", reset=True)


class Migration(migrations.Migration):
    dependencies = [("django_jobs", "0004_job_autovacuum")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
