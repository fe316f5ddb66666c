"""PostgreSQL's one-statement gated claim under racing claimers: 8 threads,
each with its own connection, complete and claim in a loop over 10 lanes of
limit 1 and a rate-limited lane; no lane ever runs two jobs at once and no
window of the rate's period holds more starts than it allows."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict

import pytest
from django.db import connections

from django_jobs.engine import get_engine
from django_jobs.models import Job
from django_jobs.rows import Completion
from django_jobs.status import JobStatus
from tests.testapp import flow_tasks

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(databases=["default", "jobs"], transaction=True),
]


def _claimer(errors: list[BaseException]) -> None:
    try:
        engine = get_engine()
        worker = uuid.uuid4()
        held: list = []
        idle = 0
        while idle < 40:  # 2 s without work: the rate's windows have passed
            done, held = engine.complete_and_claim(
                [Completion(job, "null") for job in held], worker, None, 4, 30, lane_limit=4
            )
            idle = 0 if held or done else idle + 1
            if idle:
                time.sleep(0.05)
    except BaseException as exc:  # reported by the test
        errors.append(exc)
    finally:
        connections.close_all()


def test_racing_claimers_never_exceed_a_lane_limit_or_a_rate():
    flow_tasks.one_per_key.enqueue_many([(f"k{n % 10}", 0) for n in range(200)])
    flow_tasks.five_per_second.enqueue_many([(n,) for n in range(12)])
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_claimer, args=(errors,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    keyed = Job.objects.filter(task_name=flow_tasks.one_per_key.name)
    assert keyed.filter(status=JobStatus.SUCCESSFUL).count() == 200
    assert {j.attempts for j in keyed} == {1}
    runs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for job in keyed:
        runs[job.args[0]].append((job.last_attempted_at.timestamp(), job.finished_at.timestamp()))
    for key, spans in runs.items():
        spans.sort()
        # A claim reads the clock after the previous job's completion committed,
        # whose finished_at is its statement's start: strictly before.
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert start >= end, f"lane {key} ran two jobs at once"
    rated = Job.objects.filter(task_name=flow_tasks.five_per_second.name)
    stamps = sorted(j.last_attempted_at.timestamp() for j in rated)
    assert len(stamps) == 12
    for i, first in enumerate(stamps):
        assert sum(1 for t in stamps[i:] if t < first + 1.0) <= 5, stamps
