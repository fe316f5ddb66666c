"""Flow control without workers: bad input refused with nothing written,
lanes made at enqueue, checks, pause/resume through the API, CLI and admin,
and the gated claim against the real database."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core import checks
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from django_jobs import queues, signals, task
from django_jobs.engine import get_engine
from django_jobs.exceptions import InvalidJobOptions
from django_jobs.models import Circuit, FlowLane, Job, Queue
from django_jobs.rows import Failure
from django_jobs.status import CircuitState, JobStatus
from django_jobs.tasks import registry
from tests.testapp import flow_tasks, tasks

pytestmark = pytest.mark.django_db(databases=["default", "jobs"], transaction=True)
WORKER = uuid.uuid4()


def plain(key: str) -> None:
    """Decorated by the tests below."""


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency_limit": 0}, "concurrency_limit must be a positive integer, got 0"),
        ({"concurrency_limit": -2}, "concurrency_limit must be a positive integer, got -2"),
        ({"rate_limit": "5/x"}, 'rate_limit must be "N/s", "N/m" or "N/h"'),
        ({"rate_limit": "0/s"}, "rate_limit must allow at least one start per period"),
        ({"concurrency_key": "k"}, "need a concurrency_limit or a rate_limit"),
        ({"concurrency_limit": 1, "concurrency_key": ""}, "concurrency_key must be a non-empty"),
    ],
)
def test_bad_options_fail_when_the_task_is_defined(options, message):
    with pytest.raises(InvalidJobOptions, match=message.replace("(", r"\(")):
        task(**options)(plain)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (lambda key: 1 / 0, "concurrency_key raised ZeroDivisionError"),
        (lambda key: 42, "concurrency_key must return a non-empty string, got 42"),
        (lambda key: "", "concurrency_key must return a non-empty string"),
    ],
)
def test_a_bad_key_callable_fails_the_enqueue_with_nothing_written(key, message):
    keyed = task(concurrency_limit=1, concurrency_key=key)(plain)
    with pytest.raises(InvalidJobOptions, match=message):
        keyed.enqueue("a")
    assert not Job.objects.exists()
    assert not FlowLane.objects.exists()


def test_enqueue_stores_the_lane_and_its_limits():
    job = flow_tasks.one_per_key.enqueue("red", 0)
    other = flow_tasks.one_per_key.using(concurrency_key="chosen").enqueue("red", 0)
    rated = flow_tasks.five_per_second.enqueue(1)
    free = tasks.add.enqueue(1, 1)
    assert Job.objects.get(pk=job.pk).flow_lane == "flow-test:red"
    assert Job.objects.get(pk=other.pk).flow_lane == "chosen"
    assert Job.objects.get(pk=free.pk).flow_lane is None
    lane = FlowLane.objects.get(key=Job.objects.get(pk=rated.pk).flow_lane)
    assert (lane.key, lane.rate_limit, lane.rate_period) == (
        "task:tests.testapp.flow_tasks.five_per_second",
        5,
        1.0,
    )
    assert FlowLane.objects.get(key="flow-test:red").concurrency_limit == 1


def test_the_gated_claim_takes_each_lane_up_to_its_limit_and_counts_no_waiting_attempt():
    engine = get_engine()
    for _ in range(3):
        flow_tasks.one_per_key.enqueue("red", 0)
        flow_tasks.one_per_key.enqueue("blue", 0)
        flow_tasks.two_at_a_time.enqueue(0)
    free = tasks.add.enqueue(1, 1)
    claimed = engine.claim_jobs(WORKER, None, 20, 30)
    by_task: dict[str, int] = {}
    for job in claimed:
        by_task[job.task_name] = by_task.get(job.task_name, 0) + 1
    assert by_task == {
        "tests.testapp.flow_tasks.one_per_key": 2,  # one per key
        "tests.testapp.flow_tasks.two_at_a_time": 2,
        "tests.testapp.tasks.add": 1,
    }
    assert free.pk in {job.id for job in claimed}
    assert engine.claim_jobs(WORKER, None, 20, 30) == []  # every lane full
    waiting = Job.objects.filter(status=JobStatus.READY)
    assert waiting.count() == 5
    assert {job.attempts for job in waiting} == {0}


def test_pause_and_resume_through_the_api_and_the_cli():
    job = tasks.add.using(queue_name="held").enqueue(1, 1)
    engine = get_engine()
    assert queues.pause("held") is True
    assert queues.pause("held") is False  # already paused
    assert engine.claim_jobs(WORKER, None, 10, 30) == []
    assert engine.claim_jobs(WORKER, ["held"], 10, 30) == []
    call_command("jobs", "resume", "held")
    assert [j.id for j in engine.claim_jobs(WORKER, None, 10, 30)] == [job.pk]
    assert Queue.objects.get(name="held").paused is False


@pytest.mark.parametrize("name", ["", "   ", "bad\x00name"])
def test_pausing_a_bad_queue_name_is_refused_with_nothing_written(name):
    with pytest.raises(InvalidJobOptions):
        queues.pause(name)
    with pytest.raises(CommandError, match="queue_name"):
        call_command("jobs", "pause", name)
    assert not Queue.objects.exists()


def test_overview_buttons_pause_and_resume(admin_client):
    tasks.add.using(queue_name="held").enqueue(1, 1)
    page = admin_client.get(reverse("admin:django_jobs_overview_changelist"))
    assert b'value="pause"' in page.content
    url = reverse("admin:django_jobs_queue_toggle")
    admin_client.post(url, {"queue": "held", "action": "pause"})
    assert queues.paused_queues() == ["held"]
    page = admin_client.get(reverse("admin:django_jobs_overview_changelist"))
    assert b"paused" in page.content and b'value="resume"' in page.content
    assert admin_client.get(reverse("admin:django_jobs_queue_changelist")).status_code == 200
    admin_client.post(url, {"queue": "held", "action": "resume"})
    assert queues.paused_queues() == []


@override_settings(
    DJANGO_JOBS={"QUEUES": {"a": {"CONCURRENCY": 0}, "b": {"RATE_LIMIT": "5/x", "X": 1}}}
)
def test_e301_bad_queue_limits():
    messages = [m.msg for m in checks.run_checks() if m.id == "django_jobs.E401"]
    assert len(messages) == 3, messages
    assert any("['a']['CONCURRENCY'] must be a positive integer, got 0" in m for m in messages)
    assert any("'RATE_LIMIT'] must be" in m for m in messages)
    assert any("unknown key(s) X" in m for m in messages)


def _fail(engine, job) -> None:
    error = {"exception_class": "ConnectionError", "message": "down", "traceback": ""}
    assert engine.fail_job(Failure(job=job, error=error, retry_at=None, reason="down"))


def test_circuit_probe_failure_reopens_it_and_only_one_probe_is_claimed(admin_client):
    engine = get_engine()
    changes = []

    def receiver(**kwargs):
        changes.append((kwargs["old_state"], kwargs["new_state"]))

    signals.circuit_state_changed.connect(receiver)
    try:
        for n in range(5):  # FAILURES: 5 (tests/settings.py)
            flow_tasks.partner_call.enqueue(n)
        for job in engine.claim_jobs(WORKER, None, 10, 30):
            _fail(engine, job)
        assert Circuit.objects.get(name="test-circuit").state == CircuitState.OPEN
        for n in range(4):
            flow_tasks.partner_call.enqueue(n)
        assert engine.claim_jobs(WORKER, None, 10, 30) == []  # open: nothing, no attempt
        past = timezone.now() - timedelta(seconds=5)  # the 2 s cooldown is over
        Circuit.objects.filter(name="test-circuit").update(opened_at=past)
        probes = engine.claim_jobs(WORKER, None, 10, 30)
        assert len(probes) == 1
        assert engine.claim_jobs(WORKER, None, 10, 30) == []  # one probe at a time
        assert Circuit.objects.get(name="test-circuit").probe_job_id == probes[0].id
        _fail(engine, probes[0])
        assert Circuit.objects.get(name="test-circuit").state == CircuitState.OPEN
        assert engine.claim_jobs(WORKER, None, 10, 30) == []
    finally:
        signals.circuit_state_changed.disconnect(receiver)
    page = admin_client.get(reverse("admin:django_jobs_circuit_change", args=["test-circuit"]))
    assert page.status_code == 200 and b"the probe failed" in page.content
    assert changes == [
        (CircuitState.CLOSED, CircuitState.OPEN),
        (CircuitState.OPEN, CircuitState.HALF_OPEN),
        (CircuitState.HALF_OPEN, CircuitState.OPEN),
    ]
    assert Job.objects.filter(status=JobStatus.READY, attempts=0).count() == 3


def test_an_unknown_circuit_is_refused_at_enqueue_and_by_the_checks():
    unknown = task(circuit="nowhere")(plain)
    with pytest.raises(InvalidJobOptions, match="circuit 'nowhere' is not in"):
        unknown.enqueue("a")
    assert not Job.objects.exists()
    try:
        messages = [m.msg for m in checks.run_checks() if m.id == "django_jobs.E403"]
        assert any("'nowhere'" in m for m in messages)
    finally:
        registry.pop(unknown.name)


@override_settings(DJANGO_JOBS={"CIRCUITS": {"c": {"FAILURES": 0, "COOLDOWN": "soon"}}})
def test_e302_bad_circuit_settings():
    messages = [m.msg for m in checks.run_checks() if m.id == "django_jobs.E402"]
    assert len(messages) == 2, messages


def test_the_gated_claim_rotates_through_more_lanes_than_one_claim_looks_at():
    engine = get_engine()
    flow_tasks.bench_keyed.enqueue_many([(n,) for n in range(100)])  # 100 keys, limit 1
    keyed = task(concurrency_limit=1, concurrency_key=lambda n: f"zz:{n}")(plain)
    keyed.enqueue_many([(str(n),) for n in range(50)])  # 50 more lanes, after them
    try:
        first = engine.claim_jobs(WORKER, None, 200, 30)
        second = engine.claim_jobs(WORKER, None, 200, 30)
    finally:
        registry.pop(keyed.name)
    assert len(first) == 100
    assert len(second) == 50, "lanes past the first 100 were never looked at"
    assert not {j.id for j in first} & {j.id for j in second}
