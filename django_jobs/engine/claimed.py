"""The columns a claim reads, written once, and everything built from them:
PostgreSQL's RETURNING list and the NULL padding of its combined
complete-and-claim statement (``postgres``), the row -> ClaimedJob mapping of
raw rows, and the fields the ORM engine reads (``generic``). One missed edit
fails tests/unit/test_pg_statements.py on every database pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from django_jobs.codec import from_jsonb
from django_jobs.rows import ClaimedJob

# Every ClaimedJob field but worker_id (the claimer knows it; the ORM engine
# reads it too) and database. ``id`` comes first: the combined statement's
# completion rows carry the completed id there.
CLAIMED_COLUMNS: tuple[str, ...] = (
    "id",
    "task_name",
    "queue_name",
    "priority",
    "args",
    "kwargs",
    "attempts",
    "max_attempts",
    "timeout",
    "claim_token",
    "run_after",
    "enqueued_at",
    "started_at",
    "idempotency_key",
    "meta",
    "last_attempted_at",
    "requested_run_after",
    "workflow_id",
)
# The jsonb ones among them (a raw cursor returns them as text).
CLAIMED_JSON_COLUMNS = frozenset({"args", "kwargs", "meta"})

# SQL fragments made of the constants above, never of input.
RETURNING_CLAIMED = ", ".join(f"job.{column}" for column in CLAIMED_COLUMNS)
# After a completed id: NULL for every other claimed column.
NULL_PADDING = ", NULL" * (len(CLAIMED_COLUMNS) - 1)

ClaimedRows = Callable[[Sequence[Sequence[Any]], UUID, str], list[ClaimedJob]]


def claimed_mapper(offset: int) -> ClaimedRows:
    """rows -> ClaimedJobs, column i of CLAIMED_COLUMNS read at ``offset + i``;
    with an offset, only rows whose first value (is_claim) is true.

    Generated once at import (as ``dataclasses`` generates ``__init__``): the
    comprehension reads each column by position and decodes the jsonb ones,
    exactly what a hand-written one does, with no per-row dict, zip or slice.
    The source is made of CLAIMED_COLUMNS, a constant, never input.
    """
    fields = ", ".join(
        f"{name}=from_jsonb(r[{offset + i}])"
        if name in CLAIMED_JSON_COLUMNS
        else f"{name}=r[{offset + i}]"
        for i, name in enumerate(CLAIMED_COLUMNS)
    )
    only_claims = " if r[0]" if offset else ""
    source = (
        "def claimed_from_rows(rows, worker_id, database):\n"
        f"    return [ClaimedJob({fields}, worker_id=worker_id, database=database)"
        f" for r in rows{only_claims}]\n"
    )
    namespace: dict[str, Any] = {"ClaimedJob": ClaimedJob, "from_jsonb": from_jsonb}
    exec(compile(source, f"<claimed rows, offset {offset}>", "exec"), namespace)
    mapper: ClaimedRows = namespace["claimed_from_rows"]
    return mapper


claimed_from_rows = claimed_mapper(0)  # a claim's RETURNING rows
claimed_from_flagged_rows = claimed_mapper(1)  # is_claim, then the columns


def in_claim_order(claimed: list[ClaimedJob]) -> list[ClaimedJob]:
    """Sorted as claims are made (RETURNING follows no order)."""
    claimed.sort(key=lambda job: (-job.priority, job.run_after, job.id))
    return claimed
