"""Pruning finished jobs: the engine statement, JobPruner and ``manage.py prunejobs``."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from django_jobs.models import DeadLetter, Job
from django_jobs.pruning import JobPruner, parse_duration
from django_jobs.status import JobStatus
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def make_jobs(status: str, age: timedelta, n: int) -> set[int]:
    jobs = tasks.noop.enqueue_many([()] * n)
    finished = timezone.now() - age if status in {"SUCCESSFUL", "FAILED", "CANCELLED"} else None
    Job.objects.filter(pk__in=[j.pk for j in jobs]).update(status=status, finished_at=finished)
    if status == JobStatus.READY:  # an old job still waiting: never pruned
        Job.objects.filter(pk__in=[j.pk for j in jobs]).update(enqueued_at=timezone.now() - age)
    return {j.pk for j in jobs}


def remaining() -> set[int]:
    return set(Job.objects.values_list("pk", flat=True))


@pytest.fixture
def population():
    old = (
        make_jobs(JobStatus.SUCCESSFUL, timedelta(days=10), 120)
        | make_jobs(JobStatus.FAILED, timedelta(days=9), 30)
        | make_jobs(JobStatus.CANCELLED, timedelta(days=8), 20)
    )
    kept = (
        make_jobs(JobStatus.SUCCESSFUL, timedelta(hours=1), 15)
        | make_jobs(JobStatus.READY, timedelta(days=30), 5)
        | make_jobs(JobStatus.RUNNING, timedelta(days=30), 5)
    )
    DeadLetter.objects.create(job_id=min(old), task_name="t", queue_name="q", reason="kept")
    return old, kept


def test_prunejobs_deletes_old_finished_jobs_in_batches_with_progress(population):
    old, kept = population
    out = io.StringIO()
    call_command("prunejobs", "--older-than", "7d", "--batch-size", "50", "-v", "2", stdout=out)
    assert remaining() == kept
    assert DeadLetter.objects.count() == 1, "dead letters survive pruning"
    text = out.getvalue()
    assert "in batches of 50" in text
    assert text.count(" deleted (") == 4  # 50 + 50 + 50 + 20, one progress line each
    assert f"Deleted {len(old)} job(s) in 4 batch(es)" in text


def vacuum_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'django_jobs_job'"
        )
        return int(cursor.fetchone()[0])


def test_prunejobs_vacuum_after_deleting(population):
    db_vendor = connection.vendor
    _old, kept = population
    before = vacuum_count() if db_vendor == "postgresql" else 0
    out = io.StringIO()
    call_command("prunejobs", "--older-than", "7d", "--vacuum", stdout=out)
    assert remaining() == kept
    if db_vendor == "postgresql":
        assert "Vacuumed the jobs table in" in out.getvalue()
        assert vacuum_count() == before + 1
    else:
        assert "Nothing to vacuum on this database" in out.getvalue()


@pytest.mark.postgres
def test_vacuum_refuses_to_run_inside_a_transaction():
    with transaction.atomic(), pytest.raises(RuntimeError, match="inside a transaction"):
        JobPruner().vacuum()


def test_prunejobs_dry_run_counts_and_deletes_nothing(population):
    old, kept = population
    out = io.StringIO()
    call_command("prunejobs", "--older-than", "204h", "--dry-run", stdout=out)
    assert f"{len(old) - 20} finished job(s)" in out.getvalue()  # the cancelled are 8 days old
    assert remaining() == old | kept


def test_prunejobs_uses_the_retention_setting_by_default(population):
    _, kept = population
    with override_settings(DJANGO_JOBS={"FINISHED_JOB_RETENTION": 3 * 3600}):
        call_command("prunejobs", stdout=io.StringIO())
    assert remaining() == kept
    with (
        override_settings(DJANGO_JOBS={"FINISHED_JOB_RETENTION": None}),
        pytest.raises(CommandError, match="pass --older-than"),
    ):
        call_command("prunejobs", stdout=io.StringIO())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "soon"], "invalid duration 'soon'"),
        (["--older-than=-3d"], "invalid duration"),
        (["--older-than", "1d", "--batch-size", "0"], "--batch-size: must be between 1 and"),
    ],
)
def test_prunejobs_bad_input_is_a_clear_error_and_deletes_nothing(population, args, message):
    before = remaining()
    with pytest.raises(CommandError, match=message):
        call_command("prunejobs", *args, stdout=io.StringIO())
    assert remaining() == before


def test_a_job_retried_by_an_operator_is_not_pruned(population):
    old, _ = population
    retried = min(old)
    Job.objects.filter(pk=retried).update(status=JobStatus.FAILED)
    from django_jobs.engine import get_engine

    assert get_engine().retry_jobs([retried]) == 1
    JobPruner(batch_size=1000).prune(timezone.now() - timedelta(days=1))
    assert Job.objects.get(pk=retried).status == JobStatus.READY


def test_stop_between_batches():
    make_jobs(JobStatus.SUCCESSFUL, timedelta(days=10), 30)
    stops = iter([False, False, True])
    progress = JobPruner(batch_size=10).prune(timezone.now(), should_stop=lambda: next(stops))
    assert (progress.deleted, progress.batches) == (20, 2)
    assert Job.objects.count() == 10


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("15m", 900), ("12h", 43200), ("7d", 604800), ("2W", 1209600)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds
