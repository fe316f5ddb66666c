"""Limits that compose (one lane per job): a task's concurrency and rate
limits together, combinations refused when the task is defined or enqueued,
and the worker's complete-and-claim freeing a lane slot in the same call."""

from __future__ import annotations

import uuid

import pytest
from django.core import checks
from django.test import override_settings

from django_jobs import task
from django_jobs.engine import get_engine
from django_jobs.exceptions import InvalidJobOptions
from django_jobs.models import FlowLane, Job
from django_jobs.rows import Completion
from django_jobs.status import JobStatus
from django_jobs.tasks import registry
from tests.testapp import flow_tasks

pytestmark = pytest.mark.django_db(databases=["default", "jobs"], transaction=True)
WORKER = uuid.uuid4()


def plain(n: int) -> None:
    """Decorated by the tests below."""


@pytest.fixture
def define():
    """task(**options)(plain), unregistered after the test."""
    made = []

    def make(**options):
        made.append(task(**options)(plain))
        return made[-1]

    yield make
    for t in made:
        registry.pop(t.name, None)


def test_concurrency_and_rate_limit_of_one_task_both_hold(define):
    both = define(concurrency_limit=2, rate_limit="3/h")
    both.enqueue_many([(n,) for n in range(6)])
    engine = get_engine()
    first = engine.claim_jobs(WORKER, None, 10, 30)
    assert len(first) == 2, "the concurrency limit (2) holds"
    done, second = engine.complete_and_claim(
        [Completion(job, "null") for job in first], WORKER, None, 10, 30
    )
    assert done == {job.id for job in first}
    assert len(second) == 1, "the rate limit (3 per hour) holds: 2 + 1 started"
    assert engine.claim_jobs(WORKER, None, 10, 30) == []
    assert Job.objects.filter(status=JobStatus.READY, attempts=0).count() == 3
    lane = FlowLane.objects.get()
    assert (lane.concurrency_limit, lane.rate_limit, lane.rate_period) == (2, 3, 3600.0)


def test_both_limits_with_one_shared_key_are_one_lane(define):
    key = "compose:shared"
    shared = define(concurrency_limit=1, concurrency_key=key, rate_limit="5/s", rate_limit_key=key)
    shared.enqueue_many([(n,) for n in range(3)])
    assert list(FlowLane.objects.values_list("key", flat=True)) == [key]
    assert len(get_engine().claim_jobs(WORKER, None, 10, 30)) == 1


@pytest.mark.parametrize(
    "options",
    [
        {"concurrency_limit": 1, "concurrency_key": "a", "rate_limit": "5/s"},
        {"concurrency_limit": 1, "rate_limit": "5/s", "rate_limit_key": "b"},
        {
            "concurrency_limit": 1,
            "concurrency_key": "a",
            "rate_limit": "5/s",
            "rate_limit_key": "b",
        },
    ],
)
def test_both_limits_with_different_keys_are_refused_when_defined(options):
    with pytest.raises(InvalidJobOptions, match="need the same key"):
        task(**options)(plain)
    assert plain.__name__ not in {name.rsplit(".", 1)[-1] for name in registry}


@pytest.mark.parametrize(
    "options",
    [{"concurrency_limit": 1}, {"rate_limit": "1/s"}, {"circuit": "test-circuit"}],
    ids=["concurrency", "rate", "circuit"],
)
def test_own_limits_in_a_limited_queue_are_refused_when_defined_and_at_enqueue(define, options):
    # tests/settings.py: QUEUES = {"capped": {"CONCURRENCY": 2}}
    with pytest.raises(InvalidJobOptions, match="cannot be used in queue 'capped'"):
        task(queue_name="capped", **options)(plain)
    limited = define(**options)
    with pytest.raises(InvalidJobOptions, match="cannot be used in queue 'capped'"):
        limited.using(queue_name="capped").enqueue(1)
    assert not Job.objects.exists()
    assert not FlowLane.objects.exists()


def test_e404_names_a_task_whose_queue_got_limits_after_it_was_defined(define):
    limited = define(concurrency_limit=1, queue_name="later")
    with override_settings(DJANGO_JOBS={"QUEUES": {"later": {"CONCURRENCY": 3}}}):
        messages = [m.msg for m in checks.run_checks() if m.id == "django_jobs.E404"]
        with pytest.raises(InvalidJobOptions, match="cannot be used in queue 'later'"):
            limited.enqueue(1)
    assert any(limited.name in m and "'later'" in m for m in messages), messages
    assert not Job.objects.exists()


def test_a_completion_frees_its_lane_slot_for_the_claim_of_the_same_call():
    engine = get_engine()
    for _ in range(3):
        flow_tasks.one_per_key.enqueue("red", 0)
    held = engine.claim_jobs(WORKER, None, 5, 30)
    assert len(held) == 1
    for expected_left in (1, 0):
        done, held = engine.complete_and_claim(
            [Completion(job, "null") for job in held], WORKER, None, 5, 30
        )
        assert len(done) == 1
        assert len(held) == 1, "the slot the completion freed is taken in the same call"
        assert Job.objects.filter(status=JobStatus.RUNNING).count() == 1
        assert Job.objects.filter(status=JobStatus.READY).count() == expected_left
    done, held = engine.complete_and_claim(
        [Completion(job, "null") for job in held], WORKER, None, 5, 30
    )
    assert (len(done), held) == (1, [])


def test_lane_limit_keeps_concurrency_lanes_to_a_callers_free_slots():
    for key in ("red", "blue", "green"):
        flow_tasks.one_per_key.enqueue(key, 0)
    free = flow_tasks.unlimited.enqueue(0)
    engine = get_engine()
    for lane_limit, expected in ((1, 2), (1, 1), (5, 1)):  # the lane-free job comes first
        _, claimed = engine.complete_and_claim([], WORKER, None, 10, 30, lane_limit=lane_limit)
        assert len(claimed) == expected
    assert Job.objects.filter(status=JobStatus.RUNNING).count() == 4
    assert Job.objects.get(pk=free.pk).status == JobStatus.RUNNING
