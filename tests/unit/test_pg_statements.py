"""The PostgreSQL statements agree with the constants they are built from: the
NOTIFY channels are named once (engine.pg), and the claimed-job columns are
written once (one missed edit fails here on every database pass, not silently
on PostgreSQL only)."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from types import ModuleType
from typing import Any

import pytest

from django_jobs.engine import outbox_postgres, postgres_sql, workflows_postgres_sql
from django_jobs.engine.claimed import (
    CLAIMED_COLUMNS,
    CLAIMED_JSON_COLUMNS,
    claimed_from_flagged_rows,
    claimed_from_rows,
)
from django_jobs.rows import ClaimedJob


def _statements(module: ModuleType) -> dict[str, str]:
    return {
        name: value
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, str) and "django_jobs_" in value
    }


@pytest.mark.parametrize(
    "module", [postgres_sql, outbox_postgres, workflows_postgres_sql], ids=lambda m: m.__name__
)
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


CLAIM_STATEMENTS = [
    "CLAIM_JOBS_ALL_QUEUES",
    "CLAIM_JOBS_IN_QUEUES",
    "COMPLETE_AND_CLAIM_ALL_QUEUES",
    "COMPLETE_AND_CLAIM_IN_QUEUES",
]


def test_claimed_columns_are_every_claimed_job_field_but_worker_and_database() -> None:
    fields = [field.name for field in dataclasses.fields(ClaimedJob)]
    assert sorted(CLAIMED_COLUMNS) == sorted(set(fields) - {"worker_id", "database"})
    assert len(set(CLAIMED_COLUMNS)) == len(CLAIMED_COLUMNS)
    assert CLAIMED_COLUMNS[0] == "id", "completion rows carry the id in the first column"


@pytest.mark.parametrize("name", CLAIM_STATEMENTS)
def test_claim_returning_lists_the_claimed_columns(name: str) -> None:
    sql = getattr(postgres_sql, name)
    lists = re.findall(r"RETURNING (job\.\w+(?:,\s*job\.\w+)*)", sql)
    longest = max(lists, key=len)
    assert re.findall(r"job\.(\w+)", longest) == list(CLAIMED_COLUMNS)


@pytest.mark.parametrize("name", [n for n in CLAIM_STATEMENTS if n.startswith("COMPLETE")])
def test_completion_rows_are_padded_to_the_claimed_columns(name: str) -> None:
    sql = getattr(postgres_sql, name)
    padded = re.search(r"SELECT false, (.*?)\s+FROM done", sql, re.S)
    assert padded is not None
    values = [value.strip() for value in padded.group(1).split(",")]
    assert values == ["done.id"] + ["NULL"] * (len(CLAIMED_COLUMNS) - 1)
    assert "SELECT true AS is_claim, claimed.* FROM claimed" in sql


def _row() -> tuple[Any, ...]:
    """A claim row whose every column holds a value naming it (jsonb as text)."""
    return tuple(
        json.dumps({"column": name}) if name in CLAIMED_JSON_COLUMNS else f"<{name}>"
        for name in CLAIMED_COLUMNS
    )


def _assert_mapped(job: ClaimedJob, worker_id: uuid.UUID) -> None:
    for name in CLAIMED_COLUMNS:
        expected = {"column": name} if name in CLAIMED_JSON_COLUMNS else f"<{name}>"
        assert getattr(job, name) == expected, name
    assert (job.worker_id, job.database) == (worker_id, "db")


def test_row_mapping_reads_each_column_at_its_position() -> None:
    worker_id = uuid.uuid4()
    [job] = claimed_from_rows([_row()], worker_id, "db")
    _assert_mapped(job, worker_id)


def test_flagged_row_mapping_skips_completions_and_reads_past_the_flag() -> None:
    worker_id = uuid.uuid4()
    completion = (False, 7, *[None] * (len(CLAIMED_COLUMNS) - 1))
    [job] = claimed_from_flagged_rows([completion, (True, *_row())], worker_id, "db")
    _assert_mapped(job, worker_id)
