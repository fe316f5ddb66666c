"""Alerts with several real workers: one fired event and one email, one resolve.

Three ``runworker`` processes evaluate the same rule every 0.3 s against the
same database, each able to send; the row lock on AlertState makes one of
them the sender of each transition. Mail goes through Django's file-based
backend into a directory the test reads.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from django_jobs.models import AlertEvent, AlertState, Job, Worker
from django_jobs.status import JobStatus
from tests.conftest import wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "jobs"])

RULE = {
    "kind": "failure_rate",
    "task": "tests.testapp.tasks.fails_if",
    "threshold": 0.5,
    "window": 4,
    "min_jobs": 3,
    "severity": "critical",
}


def subjects(mailbox: Path) -> list[str]:
    """The Subject of every message the workers' file backend wrote."""
    found = []
    for path in sorted(mailbox.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("Subject: "):
                found.append(line.removeprefix("Subject: "))
    return found


def kinds() -> list[str]:
    return list(AlertEvent.objects.order_by("id").values_list("kind", flat=True))


def test_three_workers_fire_once_and_resolve_once(start_worker, tmp_path):
    mailbox = tmp_path / "mail"
    mailbox.mkdir()
    env = {
        "DJANGO_JOBS_TEST_ALERTS": json.dumps({"fails-if": RULE}),
        "DJANGO_JOBS_TEST_ALERT_INTERVAL": "0.3",
        "DJANGO_JOBS_TEST_EMAIL_DIR": str(mailbox),
    }
    workers = [start_worker("--concurrency", "2", env=env) for _ in range(3)]
    # Every worker evaluates (the row exists and is re-evaluated every interval).
    wait_until(
        lambda: AlertState.objects.filter(
            rule="fails-if", last_evaluated_at__isnull=False
        ).exists(),
        timeout=90,
        message="a first evaluation",
    )

    # Jobs fail: the rate goes to 100% of the window.
    tasks.fails_if.enqueue_many([(True,) for _ in range(12)])
    wait_until(lambda: kinds() == ["fired"], timeout=90, message="the alert to fire")
    state = AlertState.objects.get(rule="fails-if")
    assert state.status == "firing" and state.value == 1.0

    # Still failing for a while: evaluations go on (several per second), no new event.
    fired_at = state.last_evaluated_at
    tasks.fails_if.enqueue_many([(True,) for _ in range(6)])
    wait_until(lambda: Job.objects.filter(status=JobStatus.FAILED).count() == 18, timeout=90)
    time.sleep(1.5)
    assert AlertState.objects.get(rule="fails-if").last_evaluated_at > fired_at
    assert kinds() == ["fired"]

    # Recovery: jobs succeed, the failures leave the 4 s window.
    def recovering() -> bool:
        tasks.fails_if.enqueue_many([(False,) for _ in range(3)])
        return kinds() == ["fired", "resolved"]

    wait_until(recovering, timeout=90, interval=0.5, message="the alert to resolve")
    time.sleep(1.5)  # more evaluations by all three workers: nothing new
    assert kinds() == ["fired", "resolved"]
    assert AlertState.objects.get(rule="fails-if").status == "ok"

    wait_until(lambda: len(subjects(mailbox)) >= 2, timeout=10, message="two emails")
    time.sleep(0.5)
    assert subjects(mailbox) == [
        "[Django] [FIRING] fails-if (critical)",
        "[Django] [RESOLVED] fails-if (critical)",
    ]
    for proc in workers:
        assert proc.terminate() == 0
    logs = [proc.output() for proc in workers]
    assert sum(log.count("alert firing: fails-if") for log in logs) == 1, logs


def test_no_alerts_worker_and_burst_worker_do_not_evaluate(start_worker, run_burst):
    env = {
        "DJANGO_JOBS_TEST_ALERTS": json.dumps({"workers-down": {"kind": "stale_workers"}}),
        "DJANGO_JOBS_TEST_ALERT_INTERVAL": "0.2",
    }
    run_burst(env=env)
    quiet = start_worker("--no-alerts", env=env)
    wait_until(Worker.objects.exists, timeout=90, message="the --no-alerts worker to register")
    time.sleep(1.5)  # several intervals
    assert not AlertState.objects.exists()
    assert quiet.terminate() == 0
    # The same settings without the flag evaluate within a few intervals.
    start_worker(env=env)
    wait_until(
        lambda: AlertState.objects.filter(last_evaluated_at__isnull=False).exists(),
        timeout=90,
        message="an evaluation",
    )
