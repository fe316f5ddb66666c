"""Alert rules firing and resolving against the real database, one kind at a time.

Transaction tests: the messages go out on commit, so the test must commit.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connections, transaction
from django.test import override_settings
from django.utils import timezone

from django_jobs import signals
from django_jobs.alerts.evaluator import Outcome, evaluate
from django_jobs.alerts.rules import Rule, parse_rule
from django_jobs.models import AlertEvent, AlertState, DeadLetter, Job, OutboxEvent, Worker
from django_jobs.status import JobStatus, OutboxStatus

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("admins"),
]
TASK = "tests.testapp.tasks.fails_if"


@pytest.fixture
def admins(settings):
    settings.ADMINS = ["ops@example.com"]


@pytest.fixture
def received():
    calls: list[dict] = []

    def receiver(sender, **kwargs):
        calls.append(kwargs)

    signals.alert.connect(receiver)
    yield calls
    signals.alert.disconnect(receiver)


def rule(name: str = "r", **spec) -> Rule:
    return parse_rule(name, spec)


def finished(status: str, n: int, *, task: str = TASK, queue: str = "default", ago: float = 1):
    at = timezone.now() - timedelta(seconds=ago)
    Job.objects.bulk_create(
        Job(task_name=task, queue_name=queue, status=status, finished_at=at) for _ in range(n)
    )


def events() -> list[tuple[str, str]]:
    return list(AlertEvent.objects.order_by("id").values_list("rule", "kind"))


def test_failure_rate_fires_once_and_resolves_once(received):
    r = rule(kind="failure_rate", task=TASK, threshold=0.5, window=60, min_jobs=4)
    finished(JobStatus.SUCCESSFUL, 2)
    finished(JobStatus.FAILED, 2, task="other.task")  # another task: not counted
    assert evaluate(r) is Outcome.UNCHANGED  # 2 jobs < min_jobs: no data
    assert AlertState.objects.get(rule="r").value is None

    finished(JobStatus.FAILED, 3)
    assert evaluate(r) is Outcome.FIRED
    state = AlertState.objects.get(rule="r")
    assert (state.status, state.value) == ("firing", 0.6)
    assert "failure rate of task tests.testapp.tasks.fails_if over 60s is 60%" in state.message
    assert evaluate(r) is Outcome.UNCHANGED  # still failing: no second message
    assert evaluate(r) is Outcome.UNCHANGED
    assert [m.subject for m in mail.outbox] == ["[Django] [FIRING] r (warning)"]
    assert mail.outbox[0].to == ["ops@example.com"]
    assert "3 of 5 finished job(s) failed in the last 60s" in mail.outbox[0].body

    finished(JobStatus.SUCCESSFUL, 10)
    assert evaluate(r) is Outcome.RESOLVED
    assert evaluate(r) is Outcome.UNCHANGED
    assert events() == [("r", "fired"), ("r", "resolved")]
    assert [m.subject for m in mail.outbox][1:] == ["[Django] [RESOLVED] r (warning)"]
    assert [(c["state"], c["value"], c["rule"].name) for c in received] == [
        ("firing", 0.6, "r"),
        ("resolved", pytest.approx(3 / 15), "r"),
    ]
    assert received[0]["message"] == received[0]["event"].message
    assert AlertState.objects.get(rule="r").status == "ok"


def test_failure_rate_of_a_queue_and_the_window():
    r = rule(kind="failure_rate", queue="payments", threshold=0.5, window=30, min_jobs=2)
    finished(JobStatus.FAILED, 5, queue="payments", ago=120)  # outside the window
    finished(JobStatus.FAILED, 5, queue="default")
    finished(JobStatus.SUCCESSFUL, 2, queue="payments")
    assert evaluate(r) is Outcome.UNCHANGED
    finished(JobStatus.FAILED, 2, queue="payments")
    assert evaluate(r) is Outcome.FIRED
    assert AlertState.objects.get().value == 0.5  # at the threshold fires


def test_oldest_ready_age_of_a_queue():
    r = rule(kind="oldest_ready_age", queue="reports", threshold=60)
    now = timezone.now()
    Job.objects.create(task_name=TASK, queue_name="default", run_after=now - timedelta(hours=1))
    Job.objects.create(task_name=TASK, queue_name="reports", run_after=now + timedelta(hours=1))
    assert evaluate(r) is Outcome.UNCHANGED  # reports: only a scheduled job
    late = Job.objects.create(
        task_name=TASK, queue_name="reports", run_after=now - timedelta(seconds=90)
    )
    assert evaluate(r) is Outcome.FIRED
    assert AlertState.objects.get().value == pytest.approx(90, abs=5)
    Job.objects.filter(pk=late.pk).update(status=JobStatus.RUNNING)
    assert evaluate(r) is Outcome.RESOLVED
    assert "no job is waiting in queue reports" in AlertState.objects.get().message


def dead_letter(task: str = TASK, ago: float = 0) -> None:
    DeadLetter.objects.create(
        job_id=1,
        task_name=task,
        queue_name="default",
        reason="failed",
        created_at=timezone.now() - timedelta(seconds=ago),
    )


def test_dead_letters_in_the_window():
    r = rule(kind="dead_letters", task=TASK, window=60)
    dead_letter(ago=600)  # old news
    dead_letter(task="other.task")
    assert evaluate(r) is Outcome.UNCHANGED
    dead_letter()
    assert evaluate(r) is Outcome.FIRED
    assert AlertState.objects.get().value == 1
    DeadLetter.objects.filter(task_name=TASK).update(
        created_at=timezone.now() - timedelta(seconds=120)
    )
    assert evaluate(r) is Outcome.RESOLVED
    assert events() == [("r", "fired"), ("r", "resolved")]


def worker(heartbeat_ago: float) -> Worker:
    return Worker.objects.create(
        id=uuid.uuid4(),
        hostname="host",
        pid=1234,
        concurrency=1,
        last_heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_ago),
    )


def test_stale_workers():
    r = rule(kind="stale_workers")
    worker(heartbeat_ago=1)
    assert evaluate(r) is Outcome.UNCHANGED
    dead = worker(heartbeat_ago=120)  # LEASE_SECONDS is 30 in the test settings
    assert evaluate(r) is Outcome.FIRED
    assert "1 worker(s) without a heartbeat for 30s (host:1234)" in AlertState.objects.get().message
    dead.delete()  # the heartbeat threads prune dead workers' rows
    assert evaluate(r) is Outcome.RESOLVED


def test_outbox_pending_age():
    r = rule(kind="outbox_pending_age", threshold=30)
    event = OutboxEvent.objects.create(topic="t", created_at=timezone.now() - timedelta(minutes=5))
    assert evaluate(r) is Outcome.FIRED
    OutboxEvent.objects.filter(pk=event.pk).update(status=OutboxStatus.DISPATCHED)
    assert evaluate(r) is Outcome.RESOLVED


def test_for_waits_before_firing():
    r = rule(kind="stale_workers", **{"for": 60})
    worker(heartbeat_ago=120)
    start = timezone.now()
    assert evaluate(r, now=start) is Outcome.UNCHANGED
    assert AlertState.objects.get().breached_since == start
    assert evaluate(r, now=start + timedelta(seconds=30)) is Outcome.UNCHANGED
    assert evaluate(r, now=start + timedelta(seconds=61)) is Outcome.FIRED
    assert AlertState.objects.get().since == start + timedelta(seconds=61)


def test_a_blip_shorter_than_for_never_fires():
    r = rule(kind="stale_workers", **{"for": 60})
    dead = worker(heartbeat_ago=120)
    start = timezone.now()
    evaluate(r, now=start)
    dead.delete()
    evaluate(r, now=start + timedelta(seconds=30))
    assert AlertState.objects.get().breached_since is None
    worker(heartbeat_ago=120)
    assert evaluate(r, now=start + timedelta(seconds=61)) is Outcome.UNCHANGED
    assert events() == []


def test_not_due_when_evaluated_recently():
    r = rule(kind="stale_workers")
    assert evaluate(r, min_interval=10) is Outcome.UNCHANGED
    worker(heartbeat_ago=120)
    assert evaluate(r, min_interval=10) is Outcome.NOT_DUE
    assert evaluate(r) is Outcome.FIRED


@override_settings(DJANGO_JOBS={"ALERT_MAIL_ADMINS": False})
def test_mail_admins_off_still_sends_the_signal(received):
    worker(heartbeat_ago=120)
    assert evaluate(rule(kind="stale_workers")) is Outcome.FIRED
    assert mail.outbox == []
    assert [c["state"] for c in received] == ["firing"]


def test_a_raising_receiver_does_not_stop_the_mail():
    def broken(sender, **kwargs):
        raise RuntimeError("receiver bug")

    signals.alert.connect(broken)
    try:
        worker(heartbeat_ago=120)
        assert evaluate(rule(kind="stale_workers")) is Outcome.FIRED
    finally:
        signals.alert.disconnect(broken)
    # (Django's own logging may mail the receiver's traceback to ADMINS as well.)
    assert [m.subject for m in mail.outbox if "FIRING" in m.subject] == [
        "[Django] [FIRING] r (warning)"
    ]


def test_a_rolled_back_transition_sends_nothing(received):
    worker(heartbeat_ago=120)
    with pytest.raises(RuntimeError), transaction.atomic():
        assert evaluate(rule(kind="stale_workers")) is Outcome.FIRED
        raise RuntimeError("the outer transaction rolls back")
    assert received == [] and mail.outbox == []
    assert events() == []
    assert not AlertState.objects.filter(status="firing").exists()
    assert evaluate(rule(kind="stale_workers")) is Outcome.FIRED  # committed this time
    assert len(received) == 1 and len(mail.outbox) == 1


@pytest.mark.postgres
def test_a_rule_locked_by_another_worker_is_skipped(received):
    """Worker A holds the rule's row; worker B (another connection) skips it, writes nothing."""
    r = rule(kind="stale_workers")
    evaluate(r)
    worker(heartbeat_ago=120)
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with transaction.atomic():
            AlertState.objects.select_for_update().get(rule="r")
            locked.set()
            release.wait(10)
        connections.close_all()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(10)
        assert evaluate(r) is Outcome.BUSY
        assert events() == [] and received == []
    finally:
        release.set()
        holder.join()
    assert evaluate(r) is Outcome.FIRED


def test_concurrent_evaluations_make_one_transition(received, is_postgres):
    """Threads (each its own connection) evaluating the same breached rule at once."""
    r = rule(kind="stale_workers")
    evaluate(r)
    worker(heartbeat_ago=120)
    barrier = threading.Barrier(4)
    outcomes: list[Outcome] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(10)
            outcomes.append(evaluate(r))
        except BaseException as exc:  # SQLite: "database is locked" would show here
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert outcomes.count(Outcome.FIRED) == 1
    assert events() == [("r", "fired")]
    assert len(received) == 1 and len(mail.outbox) == 1


def test_an_evaluation_is_a_few_statements(
    django_assert_max_num_queries, django_assert_num_queries
):
    r = rule(kind="failure_rate", queue="default", threshold=0.5)
    evaluate(r)  # creates the row
    # exists, SELECT ... FOR UPDATE, the measure, the UPDATE (+ BEGIN/COMMIT on some backends)
    with django_assert_max_num_queries(6):
        assert evaluate(r) is Outcome.UNCHANGED
    with django_assert_num_queries(1):  # a plain read, no lock
        assert evaluate(r, min_interval=60) is Outcome.NOT_DUE


def test_evaluate_all_goes_on_after_a_failing_rule(monkeypatch):
    from django_jobs.alerts import evaluator, measures  # patched below

    def broken(rule, alias, now):
        raise RuntimeError("measure bug")

    monkeypatch.setitem(measures.MEASURES, "dead_letters", broken)
    worker(heartbeat_ago=120)
    outcomes = evaluator.evaluate_all(
        [rule("a", kind="dead_letters"), rule("b", kind="stale_workers")]
    )
    assert outcomes == {"b": Outcome.FIRED}
    assert AlertState.objects.get(rule="a").last_evaluated_at is None  # rolled back
