"""The plans PostgreSQL picks for the worker's claim statements, as executed
(prepared, after enough runs for a generic plan), in the state that misled
the planner before: one queue holding every job, with statistics that say
so (the paused-queue test was estimated to match no row), and a backlog of
ready jobs (the claimed rows were found by hashing a full scan). No claim
may read the whole job table: each plan is captured by auto_explain and
searched for a sequential scan of it."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from django_jobs.engine import get_engine
from django_jobs.rows import ClaimedJob, Completion, RecoveryReport
from tests.testapp.tasks import noop

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

BACKLOG = 10_000
CYCLES = 8  # psycopg prepares, PostgreSQL may switch to a generic plan after 5


def _scans(plan: dict[str, Any]) -> Iterator[tuple[str, str]]:
    yield plan["Node Type"], plan.get("Relation Name", "")
    for child in plan.get("Plans", []):
        yield from _scans(child)


@contextlib.contextmanager
def _captured_plans(analyze: bool) -> Iterator[list[dict[str, Any]]]:
    """Every statement's plan on this connection (with the rows each node
    read if ``analyze``)."""
    captured: list[dict[str, Any]] = []

    def on_notice(diagnostic: Any) -> None:
        message = diagnostic.message_primary or ""
        start = message.find("{")
        if "plan:" in message and start >= 0:
            captured.append(json.loads(message[start:])["Plan"])

    connection.ensure_connection()
    raw = connection.connection
    raw.add_notice_handler(on_notice)
    with connection.cursor() as cursor:
        cursor.execute("LOAD 'auto_explain'")
        cursor.execute("SET auto_explain.log_min_duration = 0")
        cursor.execute("SET auto_explain.log_format = json")
        cursor.execute("SET auto_explain.log_level = notice")
        cursor.execute(f"SET auto_explain.log_analyze = {'on' if analyze else 'off'}")
    try:
        yield captured
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET auto_explain.log_min_duration = -1")
        raw.remove_notice_handler(on_notice)


@pytest.fixture
def plans() -> Iterator[list[dict[str, Any]]]:
    with _captured_plans(analyze=False) as captured:
        yield captured


@pytest.fixture
def analyzed_plans() -> Iterator[list[dict[str, Any]]]:
    with _captured_plans(analyze=True) as captured:
        yield captured


def _one_queue_backlog_analyzed() -> None:
    noop.enqueue_many([() for _ in range(BACKLOG)])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_jobs_job")


def _steady_state(queues: list[str] | None) -> Iterator[list[ClaimedJob]]:
    """CYCLES turns of a worker's steady state (complete what it holds, claim
    100 more); what each turn claimed. Each turn's completions must be acknowledged."""
    engine = get_engine()
    worker = uuid.uuid4()
    held: list[ClaimedJob] = []
    for _ in range(CYCLES):
        completions = [Completion(job, "null") for job in held]
        done, held = engine.complete_and_claim(completions, worker, queues, 100, 30.0)
        assert done == {completion.job.id for completion in completions}
        yield held


def _job_table_seq_scans(plans: list[dict[str, Any]]) -> list[str]:
    return [
        node
        for plan in plans
        for node, relation in _scans(plan)
        if node == "Seq Scan" and relation == "django_jobs_job"
    ]


@pytest.mark.parametrize("queues", [None, ["default"]], ids=["all-queues", "named-queue"])
def test_the_worker_steady_state_never_reads_the_whole_job_table(
    plans: list[dict[str, Any]], queues: list[str] | None
) -> None:
    _one_queue_backlog_analyzed()
    plans.clear()
    for held in _steady_state(queues):
        assert len(held) == 100
    assert len(plans) >= CYCLES
    assert _job_table_seq_scans(plans) == []


def test_a_claim_never_reads_the_whole_job_table(plans: list[dict[str, Any]]) -> None:
    _one_queue_backlog_analyzed()
    engine = get_engine()
    plans.clear()
    for _ in range(CYCLES):
        assert len(engine.claim_jobs(uuid.uuid4(), None, 100, 30.0)) == 100
    assert len(plans) >= CYCLES
    assert _job_table_seq_scans(plans) == []


def test_the_worker_s_periodic_statements_never_read_the_whole_job_table(
    plans: list[dict[str, Any]],
) -> None:
    _one_queue_backlog_analyzed()
    engine = get_engine()
    worker = uuid.uuid4()
    held = engine.claim_jobs(worker, None, 100, 30.0)
    engine.complete_jobs([Completion(job, "null") for job in held[:50]])
    held = held[50:]
    plans.clear()
    week_ago = timezone.now() - timedelta(days=7)
    for _ in range(CYCLES):
        assert engine.renew_leases(held, 30.0).renewed == len(held)
        assert engine.recover_expired() == RecoveryReport()
        assert engine.release_orphans(worker, [job.id for job in held]) == 0
        assert engine.prune_finished(week_ago, 1000) == 0
    assert len(plans) >= 4 * CYCLES
    assert _job_table_seq_scans(plans) == []


def _job_rows_read(plan: dict[str, Any]) -> Iterator[tuple[int, str]]:
    """Rows each scan of the job table produced or filtered out (all loops),
    and the scan."""
    if plan.get("Relation Name") == "django_jobs_job":
        loops = plan.get("Actual Loops", 1)
        rows = (plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)) * loops
        yield rows, f"{plan['Node Type']} {plan.get('Index Name', '')}"
    for child in plan.get("Plans", []):
        yield from _job_rows_read(child)


def test_a_claim_of_a_burst_into_a_queue_the_statistics_never_saw_reads_its_first_rows(
    analyzed_plans: list[dict[str, Any]],
) -> None:
    plans = analyzed_plans
    # The statistics know one queue; the burst lands in another, so the
    # planner believes it empty. Each claim must still read about what it
    # claims, not every due job of the queue (then sort them).
    _one_queue_backlog_analyzed()
    noop.using(queue_name="burst").enqueue_many([() for _ in range(BACKLOG)])
    plans.clear()
    for held in _steady_state(["burst"]):
        assert len(held) == 100 and {job.queue_name for job in held} == {"burst"}
    assert len(plans) >= CYCLES
    most = max(max(_job_rows_read(plan), default=(0, "")) for plan in plans)
    assert most[0] <= 3 * 100, most
