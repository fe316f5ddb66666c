"""Workflows while workers are SIGKILLed: no step or callback lost or doubled."""

from __future__ import annotations

from collections import Counter

import pytest

from django_jobs import chain, chord, group
from django_jobs.models import Job
from django_jobs.status import JobStatus, WorkflowStatus
from tests.conftest import wait_until
from tests.e2e.crash_support import FAST_LEASES, worker_id
from tests.testapp import tasks
from tests.testapp.models import Event

pytestmark = pytest.mark.django_db(databases=["default", "jobs"], transaction=True)


def test_sigkill_of_a_worker_mid_chord_still_calls_back_exactly_once(start_worker, is_postgres):
    # On SQLite an atomic task holds the database's write lock for its whole
    # body (IMMEDIATE transactions): the members run one at a time there, so
    # they pause less.
    pause = 0.05 if is_postgres else 0.01
    members = group(tasks.wf_square.s(n, pause=pause) for n in range(200))
    workflow = chord(members, tasks.wf_collect.s()).enqueue()
    workers = [start_worker("--concurrency", "4", env=FAST_LEASES) for _ in range(3)]
    wait_until(
        lambda: Event.objects.filter(name="wf_square").count() >= 60, 60, message="60 members"
    )
    by_id = {worker_id(w): w for w in workers}
    running = Job.objects.filter(workflow=workflow, status=JobStatus.RUNNING)
    # The worker holding the most members (claimed, running or prefetched).
    busiest = wait_until(
        lambda: Counter(running.values_list("worker_id", flat=True)).most_common(1),
        30,
        0.01,
        "a worker holding members",
    )[0][0]
    by_id[busiest].kill()  # mid-chord: its running members' atomic writes roll back
    workflow.wait(120)
    assert workflow.status == WorkflowStatus.SUCCESSFUL
    (callback,) = Event.objects.filter(name="wf_collect")
    assert callback.value["results"] == [n * n for n in range(200)]
    squares = sorted(Event.objects.filter(name="wf_square").values_list("value__n", flat=True))
    assert squares == list(range(200)), "each atomic member had exactly one effect"
    recovered = [
        job
        for job in Job.objects.filter(workflow=workflow, attempts__gt=1)
        if any("stopped renewing its lease" in str(error) for error in job.errors)
    ]
    assert recovered, "no member was running on the killed worker"
    for worker in workers:
        if worker is not by_id[busiest]:
            assert worker.terminate() == 0


def test_step_dead_lettered_by_lease_recovery_fails_the_workflow(start_worker):
    workflow = chain(tasks.wf_sleep.s(30), tasks.wf_add.s(1)).enqueue()
    victim = start_worker(env=FAST_LEASES)
    job = Job.objects.get(workflow=workflow)
    wait_until(lambda: Job.objects.get(pk=job.pk).status == JobStatus.RUNNING, 30)
    victim.kill()
    rescuer = start_worker(env=FAST_LEASES)
    # Recovery dead-letters the job (no attempt left) in SQL with no advance;
    # settle_orphans, run right after it, fails the workflow.
    workflow.wait(30)
    assert workflow.status == WorkflowStatus.FAILED
    assert "worker lost" in workflow.failure and workflow.failed_step.path == "0"
    assert Job.objects.filter(workflow=workflow).count() == 1
    assert rescuer.terminate() == 0


def test_chain_of_atomic_steps_on_the_process_pool(run_burst):
    workflow = chain(tasks.wf_square.s(2), tasks.wf_square.s(), tasks.wf_collect.si([1])).enqueue()
    run_burst("--pool", "process", "--concurrency", "2")
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.SUCCESSFUL
    assert [e.value["n"] for e in Event.objects.filter(name="wf_square").order_by("id")] == [2, 4]
