"""Per-table autovacuum settings for the jobs table (PostgreSQL only).

A queue turns its rows over constantly: each job is inserted, updated when
claimed and when finished, and deleted by pruning, and every update leaves a
dead entry in the claim index. PostgreSQL's default (vacuum at 20% dead
rows) means one vacuum per 200,000 dead rows on a table holding 1,000,000
finished jobs: claims then wade through dead index entries. These settings
vacuum after 1% + 1,000 dead rows, analyze after 2%, and let vacuum run
without its default sleeps so each pass is short.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

STORAGE_PARAMETERS = {
    "autovacuum_vacuum_scale_factor": "0.01",
    "autovacuum_vacuum_threshold": "1000",
    "autovacuum_vacuum_insert_scale_factor": "0.05",
    "autovacuum_analyze_scale_factor": "0.02",
    "autovacuum_vacuum_cost_delay": "0",
}


def set_autovacuum(apps: Any, schema_editor: Any, model_name: str, *, reset: bool) -> None:
    """Set (or reset) STORAGE_PARAMETERS on a model's table; used by 0005 as well."""
    if schema_editor.connection.vendor != "postgresql":
        return
    table = schema_editor.quote_name(apps.get_model("django_jobs", model_name)._meta.db_table)
    if reset:
        schema_editor.execute(f"ALTER TABLE {table} RESET ({', '.join(STORAGE_PARAMETERS)})")
    else:
        options = ", ".join(f"{name} = {value}" for name, value in STORAGE_PARAMETERS.items())
        schema_editor.execute(f"ALTER TABLE {table} SET ({options})")


def forwards(apps: Any, schema_editor: Any) -> None:
    set_autovacuum(apps, schema_editor, "Job", reset=False)


def backwards(apps: Any, schema_editor: Any) -> None:
    set_autovacuum(apps, schema_editor, "Job", reset=True)


class Migration(migrations.Migration):
    dependencies = [("django_jobs", "0003_outbox")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
