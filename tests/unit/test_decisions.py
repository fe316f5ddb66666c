"""What a failed attempt leads to: retry at a time, or give up with a reason
(``runner.decide``, no database, no clock: ``now`` is given); and which topics
a subscription pattern matches."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from django_jobs.exceptions import (
    Discard,
    JobTimeout,
    Retry,
    UnknownTaskError,
    WorkerCrashed,
)
from django_jobs.outbox.events import topic_matches
from django_jobs.rows import ClaimedJob
from django_jobs.tasks import Task, not_registered
from django_jobs.worker.runner import Cause, crash_failure, decide, timeout_failure

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BASE = 5.0  # BACKOFF_BASE here: "fixed" waits 5 s, "linear" 5 s per attempt


@pytest.fixture(autouse=True)
def fixed_backoff(settings):
    """A default backoff without jitter, so that delays are exact."""
    settings.DJANGO_JOBS = {
        **settings.DJANGO_JOBS,
        "DEFAULT_BACKOFF": "fixed",
        "BACKOFF_BASE": BASE,
        "BACKOFF_MAX": 3600.0,
    }


def claimed(attempts: int = 1, max_attempts: int = 3, task_name: str = "x.y") -> ClaimedJob:
    return ClaimedJob(
        id=7,
        task_name=task_name,
        queue_name="default",
        priority=0,
        args=[],
        kwargs={},
        attempts=attempts,
        max_attempts=max_attempts,
        timeout=5.0,
        claim_token=uuid.uuid4(),
        worker_id=uuid.uuid4(),
        run_after=NOW,
        enqueued_at=NOW,
        started_at=NOW,
    )


def body() -> None:
    """The function of the tasks below (never called)."""


def task(**options: object) -> Task[[], None]:
    return Task(func=body, name="tests.unit.test_decisions.body", **options)  # type: ignore[arg-type]


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def retried_after(failure, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    return failure.retry_at == NOW + timedelta(seconds=seconds) and failure.reason == ""


# -- a task body raised ----------------------------------------------------------


def test_a_failed_attempt_is_retried_with_the_default_backoff_and_recorded():
    job = claimed()
    failure = decide(job, task(), raised(ValueError("bad input")), NOW)
    assert failure.job is job
    assert retried_after(failure, BASE)
    assert failure.error["attempt"] == 1
    assert failure.error["exception_class"] == "builtins.ValueError"
    assert failure.error["message"] == "bad input"
    assert "Traceback" in failure.error["traceback"]
    assert "ValueError: bad input" in failure.error["traceback"]
    assert failure.error["at"] == NOW.isoformat()
    assert failure.error["worker_id"] == str(job.worker_id)


def test_the_tasks_backoff_replaces_the_default():
    failure = decide(claimed(attempts=2), task(backoff="linear"), raised(ValueError()), NOW)
    assert retried_after(failure, 2 * BASE)
    failure = decide(claimed(attempts=2), task(backoff=lambda n: n * 7.0), ValueError(), NOW)
    assert retried_after(failure, 14.0)


@pytest.mark.parametrize("task_obj", [None, task(backoff=None)], ids=["unknown", "no backoff"])
def test_without_a_backoff_of_its_own_the_default_applies(task_obj):
    assert retried_after(decide(claimed(attempts=2), task_obj, ValueError(), NOW), BASE)


def test_discard_gives_up_at_once_with_its_reason():
    failure = decide(claimed(), task(retry_on=(ValueError,)), raised(Discard("gone\x00")), NOW)
    assert failure.retry_at is None
    assert failure.reason == "discarded by the task: gone\\x00"  # storable: no NUL
    assert failure.error["exception_class"] == "django_jobs.exceptions.Discard"


def test_discard_with_a_reason_that_is_not_text_says_what_it_is():
    exc = Discard("x")
    exc.reason = 42  # type: ignore[assignment]
    assert decide(claimed(), None, exc, NOW).reason == "discarded by the task: x"


def test_discard_on_gives_up_at_once_even_before_the_last_attempt():
    failure = decide(claimed(), task(discard_on=(KeyError,)), raised(KeyError("k")), NOW)
    assert (failure.retry_at, failure.reason) == (None, "discarded: KeyError: 'k' is in discard_on")


def test_discard_on_wins_over_exhausted_attempts():
    job = claimed(attempts=3, max_attempts=3)
    failure = decide(job, task(discard_on=(KeyError,)), KeyError("k"), NOW)
    assert failure.reason == "discarded: KeyError: 'k' is in discard_on"


def test_an_exception_outside_retry_on_is_not_retried():
    failure = decide(claimed(), task(retry_on=(ConnectionError,)), raised(ValueError("v")), NOW)
    assert failure.retry_at is None
    assert failure.reason == "not retried: ValueError: v is not in retry_on"


def test_an_exception_in_retry_on_is_retried():
    failure = decide(claimed(), task(retry_on=(OSError,)), raised(ConnectionError("c")), NOW)
    assert retried_after(failure, BASE)


def test_the_last_attempt_gives_up_whatever_the_exception():
    for exc in [ValueError("v"), Retry("again", delay=1)]:
        failure = decide(claimed(attempts=3, max_attempts=3), task(), raised(exc), NOW)
        assert failure.retry_at is None
        assert failure.reason.startswith(f"attempts exhausted (3/3): {type(exc).__name__}: ")


def test_the_exhausted_reason_is_storable():
    failure = decide(claimed(attempts=1, max_attempts=1), None, ValueError("a\x00b"), NOW)
    assert failure.reason == "attempts exhausted (1/1): ValueError: a\\x00b"


def test_retry_is_retried_even_outside_retry_on():
    failure = decide(claimed(), task(retry_on=(KeyError,)), raised(Retry("later")), NOW)
    assert retried_after(failure, BASE)  # no delay given: the backoff decides


def test_retry_with_a_delay_waits_that_long():
    failure = decide(claimed(), task(backoff="linear"), Retry(delay=timedelta(minutes=2)), NOW)
    assert retried_after(failure, 120.0)
    assert retried_after(decide(claimed(), None, Retry(delay=0), NOW), 0.0)


def test_retry_at_a_time_runs_then_or_now_if_past():
    later = NOW + timedelta(hours=3)
    assert decide(claimed(), task(), Retry(at=later), NOW).retry_at == later
    assert decide(claimed(), task(), Retry(at=NOW - timedelta(hours=3)), NOW).retry_at == NOW


# -- the job ran past its timeout ------------------------------------------------


def test_a_timeout_follows_the_tasks_retry_policy():
    exc = JobTimeout("job 7 ran longer than its timeout of 5s")
    assert retried_after(decide(claimed(), task(), exc, NOW), BASE)
    failure = decide(claimed(), task(retry_on=(ConnectionError,)), exc, NOW)
    assert failure.reason == (
        "not retried: JobTimeout: job 7 ran longer than its timeout of 5s is not in retry_on"
    )
    failure = decide(claimed(), task(discard_on=(JobTimeout,)), exc, NOW)
    assert failure.reason.startswith("discarded: JobTimeout")


def test_timeout_failure_names_the_timeout_and_applies_the_defaults():
    failure = timeout_failure(claimed(task_name="not.registered"))
    assert failure.retry_at is not None and failure.reason == ""
    assert failure.error["message"] == "job 7 ran longer than its timeout of 5s"
    assert failure.error["exception_class"] == "django_jobs.exceptions.JobTimeout"
    failure = timeout_failure(claimed(attempts=3, task_name="not.registered"))
    assert failure.reason == (
        "attempts exhausted (3/3): JobTimeout: job 7 ran longer than its timeout of 5s"
    )


def test_timeout_failure_applies_the_registered_tasks_policy():
    failure = timeout_failure(claimed(task_name="tests.testapp.tasks.raises_type_error"))
    assert failure.retry_at is None
    assert failure.reason.endswith("is not in retry_on")


# -- the process running it died -------------------------------------------------


CRASH = WorkerCrashed("child process 123 was killed by signal 9 (SIGKILL) while running job 7")


@pytest.mark.parametrize(
    "task_obj",
    [task(retry_on=(KeyError,)), task(discard_on=(WorkerCrashed,)), None],
    ids=["retry_on", "discard_on", "unknown"],
)
def test_a_crash_is_retried_while_attempts_remain_whatever_the_policy(task_obj):
    failure = decide(claimed(), task_obj, CRASH, NOW, Cause.CRASHED)
    assert retried_after(failure, BASE)
    assert failure.error["traceback"] == ""
    assert failure.error["exception_class"] == "django_jobs.exceptions.WorkerCrashed"


def test_a_crash_uses_the_tasks_backoff():
    job = claimed(attempts=3, max_attempts=5)
    failure = decide(job, task(backoff="linear"), CRASH, NOW, Cause.CRASHED)
    assert retried_after(failure, 3 * BASE)


def test_a_crash_on_the_last_attempt_gives_up_naming_the_crash():
    failure = decide(claimed(attempts=3), task(), CRASH, NOW, Cause.CRASHED)
    assert failure.retry_at is None
    assert failure.reason == f"attempts exhausted (3/3): {CRASH}"  # the message, no class name


def test_crash_failure_uses_the_registered_tasks_backoff(settings):
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "DEFAULT_BACKOFF": "linear"}
    for name, seconds in [("tests.testapp.tasks.fail_times", BASE), ("not.registered", 2 * BASE)]:
        before = timezone.now()
        failure = crash_failure(claimed(attempts=2, task_name=name), CRASH)
        assert failure.retry_at is not None
        assert before + timedelta(seconds=seconds) <= failure.retry_at
        assert failure.retry_at <= timezone.now() + timedelta(seconds=seconds)


# -- the job cannot run at all ---------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [not_registered("os.system"), UnknownTaskError("job row is undecodable: args must be ...")],
    ids=["unknown task", "undecodable row"],
)
def test_an_unrunnable_job_is_dead_lettered_at_once(exc):
    failure = decide(claimed(attempts=1, max_attempts=5), None, exc, NOW, Cause.UNRUNNABLE)
    assert (failure.retry_at, failure.reason) == (None, str(exc))
    assert failure.error["traceback"] == ""
    assert failure.error["exception_class"] == "django_jobs.exceptions.UnknownTaskError"
    assert failure.error["at"] == NOW.isoformat()


def test_a_task_raising_unknown_task_error_itself_is_retried():
    assert retried_after(decide(claimed(), task(), not_registered("a.b"), NOW), BASE)


# -- topic patterns --------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "topic"),
    [
        ("order.created", "order.created"),
        ("order.*", "order.created"),
        ("*.created", "order.created"),
        ("*", "order"),
        ("#", "order"),
        ("#", "order.created.eu"),
        ("order.#", "order"),
        ("order.#", "order.created"),
        ("order.#", "order.created.eu"),
        ("#.eu", "eu"),
        ("#.eu", "order.created.eu"),
        ("order.#.eu", "order.eu"),
        ("order.#.eu", "order.created.big.eu"),
        ("order.*.#", "order.created"),
        ("order.100%", "order.100%"),
        ("a+b.*", "a+b.x"),
    ],
)
def test_topic_matches(pattern, topic):
    assert topic_matches(pattern, topic)


@pytest.mark.parametrize(
    ("pattern", "topic"),
    [
        ("order.created", "order.updated"),
        ("order.created", "order.created.eu"),
        ("order.*", "order"),
        ("order.*", "order.created.eu"),
        ("*", "order.created"),
        ("*.created", "created"),
        ("order.#", "orders.created"),
        ("order.#", "other"),
        ("order.#.eu", "order.created.us"),
        ("order.*.#", "order"),
        ("a+b.*", "aab.x"),  # words are literal, not regular expressions
        ("order.*", "orderXcreated"),
    ],
)
def test_topic_does_not_match(pattern, topic):
    assert not topic_matches(pattern, topic)
