"""PostgreSQL's hand-off (engine.flow_postgres_sql): once a scan finds no
lane waiting but those of the jobs it finished, a finished job's slot goes to
its lane's next job in the completing statement, without writing the lane's
row; while other lanes wait, slots go back to the rotation instead."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest
from django.db import connection

from django_jobs.engine import get_engine
from django_jobs.engine.flow_postgres import PostgresFlowOperations
from django_jobs.models import FlowLane, Job
from django_jobs.rows import ClaimedJob, Completion
from django_jobs.status import JobStatus
from tests.testapp import flow_tasks

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(databases=["default", "jobs"], transaction=True),
]


class _Cycles:
    """One worker's steady state: complete what it holds, claim again; the
    kinds of rows each gated statement returned."""

    def __init__(self, slots: int) -> None:
        self.engine = get_engine()
        self.worker = uuid.uuid4()
        self.slots = slots
        self.held: list[ClaimedJob] = []
        self.kinds: list[Counter[str]] = []

    def run(self, monkeypatch: pytest.MonkeyPatch, cycles: int) -> None:
        original = PostgresFlowOperations._run_gated

        def spy(engine: Any, statement: str, params: dict[str, Any]) -> Any:
            result = original(engine, statement, params)
            self.kinds.append(Counter(row[0] for row in result.rows))
            return result

        monkeypatch.setattr(PostgresFlowOperations, "_run_gated", spy)
        for _ in range(cycles):
            completions = [Completion(job, "null") for job in self.held]
            _, self.held = self.engine.complete_and_claim(
                completions, self.worker, None, self.slots, 30, lane_limit=self.slots
            )


def _lane_version(key: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT xmin::text FROM django_jobs_flowlane WHERE key = %s", [key])
        return str(cursor.fetchone()[0])


def test_a_lane_nobody_else_waits_for_hands_its_slot_on_without_writing_its_row(monkeypatch):
    flow_tasks.one_per_key.enqueue_many([("solo", 0) for _ in range(6)])
    key = FlowLane.objects.get().key
    cycles = _Cycles(slots=4)
    cycles.run(monkeypatch, 2)  # the first claim, then a scan: only our own lane was free
    before = _lane_version(key)
    cycles.run(monkeypatch, 3)
    assert [kinds["handoff"] for kinds in cycles.kinds[-3:]] == [1, 1, 1]
    assert _lane_version(key) == before  # no lock, no write: the count never went up
    jobs = Job.objects.filter(task_name=flow_tasks.one_per_key.name)
    assert jobs.filter(status=JobStatus.SUCCESSFUL).count() == 4
    assert jobs.filter(status=JobStatus.RUNNING).count() == 1
    assert {job.attempts for job in jobs.exclude(status=JobStatus.READY)} == {1}


def test_the_hand_off_honours_a_limit_lowered_while_jobs_run(monkeypatch):
    flow_tasks.two_at_a_time.enqueue_many([(0,) for _ in range(8)])
    cycles = _Cycles(slots=4)
    cycles.run(monkeypatch, 3)  # two running, and hand-off mode on
    assert cycles.kinds[-1]["handoff"] == 2
    FlowLane.objects.update(concurrency_limit=1)
    cycles.run(monkeypatch, 1)  # two finish: one slot is left to hand on
    assert cycles.kinds[-1]["handoff"] == 1
    running = Job.objects.filter(task_name=flow_tasks.two_at_a_time.name, status="RUNNING")
    assert running.count() == 1


def test_lanes_waiting_for_a_slot_take_turns_instead(monkeypatch):
    # 12 lanes of limit 1 and 4 slots: every statement's scan finds other
    # lanes waiting, so no lane keeps its slot and each gets its turns (the
    # rotation resumes at the last lane it took, which may take one more).
    flow_tasks.one_per_key.enqueue_many([(f"turn{n % 12}", 0) for n in range(60)])
    cycles = _Cycles(slots=4)
    cycles.run(monkeypatch, 9)
    assert sum(kinds["handoff"] for kinds in cycles.kinds) == 0
    started = Counter(
        job.args[0]
        for job in Job.objects.filter(task_name=flow_tasks.one_per_key.name).exclude(
            status=JobStatus.READY
        )
    )
    # 36 starts: kept slots would give 4 lanes 9 each and 8 lanes none.
    assert sum(started.values()) == 36
    assert len(started) == 12 and min(started.values()) >= 2, started


def test_a_rate_limited_lane_never_hands_off(monkeypatch):
    flow_tasks.five_per_second.enqueue_many([(n,) for n in range(4)])
    cycles = _Cycles(slots=1)
    cycles.run(monkeypatch, 5)
    assert sum(kinds["handoff"] for kinds in cycles.kinds) == 0
    assert Job.objects.filter(status=JobStatus.SUCCESSFUL).count() == 4


def test_a_rate_limited_lane_beside_keeps_every_statement_scanning(monkeypatch):
    # A rate-only lane cannot hand off: while it has jobs, a lane of limit 1
    # beside it is no reason to stop scanning (its starts would wait for the
    # next scan, DRY_SCAN_PAUSE later).
    flow_tasks.one_per_key.enqueue_many([("beside", 0) for _ in range(6)])
    flow_tasks.bench_rated.enqueue_many([(n,) for n in range(6)])
    cycles = _Cycles(slots=2)
    cycles.run(monkeypatch, 5)
    assert sum(kinds["handoff"] for kinds in cycles.kinds) == 0
    rated = Job.objects.filter(task_name=flow_tasks.bench_rated.name)
    assert rated.filter(status=JobStatus.READY).count() <= 1


def test_a_lane_waiting_beside_finished_lane_free_jobs_counts_as_another_lane(monkeypatch):
    # One statement finishes a lane-free job (no lane) and lane A's job,
    # and its scan gives a share to lane A and to a new lane C: C is another
    # lane with a free slot, so hand-off mode must stay off. (A lane-free
    # job's missing lane must not make C's membership test unknown.)
    flow_tasks.unlimited.enqueue(1)
    flow_tasks.one_per_key.enqueue_many([("laneA", 0), ("laneA", 0)])
    cycles = _Cycles(slots=6)
    cycles.run(monkeypatch, 1)
    assert {job.task_name for job in cycles.held} == {
        flow_tasks.unlimited.name,
        flow_tasks.one_per_key.name,
    }
    flow_tasks.one_per_key.enqueue_many([("laneC", 0)])
    others: list[int] = []
    original = PostgresFlowOperations._run_gated

    def spy(engine: Any, statement: str, params: dict[str, Any]) -> Any:
        result = original(engine, statement, params)
        others.extend(row[2] for row in result.rows if row[0] == "others")
        return result

    monkeypatch.setattr(PostgresFlowOperations, "_run_gated", spy)
    completions = [Completion(job, "null") for job in cycles.held]
    cycles.engine.complete_and_claim(completions, cycles.worker, None, 6, 30, lane_limit=6)
    assert others == [1]
