"""Chaos: many sagas, chords and chains while one of 3 workers is SIGKILLed
every 2 s. Every workflow ends in its expected state, every atomic step has
exactly one effect, and no step or callback is missing or doubled.

PostgreSQL: 200 workflows. SQLite (one writer at a time, and each worker
restart costs about a second of this shared machine's CPU): 80, same mix.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from django.db import connection

from django_jobs import chain, chord, group, saga
from django_jobs.models import Job, Workflow, WorkflowStep
from django_jobs.status import JobStatus, StepStatus, WorkflowStatus
from tests.e2e.crash_support import FAST_LEASES
from tests.testapp import tasks
from tests.testapp.models import Event

pytestmark = pytest.mark.django_db(databases=["default", "jobs"], transaction=True)

MEMBERS = 4  # per chord


def compensating_saga(i: int) -> saga:
    """Its third step gives up: undo b (which fails once first), then undo a."""
    return saga(
        (tasks.chaos_do.s(f"c{i}-a"), tasks.chaos_undo.s(f"c{i}-a")),
        (tasks.chaos_do.s(f"c{i}-b"), tasks.chaos_undo.s(f"c{i}-b", fail_times=1)),
        (tasks.chaos_do.s(f"c{i}-c", fail=True), tasks.chaos_undo.s(f"c{i}-c")),
    )


def succeeding_saga(i: int) -> saga:
    return saga(
        (tasks.chaos_do.s(f"s{i}-a"), tasks.chaos_undo.s(f"s{i}-a")),
        (tasks.chaos_do.s(f"s{i}-b"), tasks.chaos_undo.s(f"s{i}-b")),
        (tasks.chaos_do.s(f"s{i}-c"), None),
    )


def a_chord(i: int) -> chord:
    members = group(tasks.chaos_square.s(i * 100 + n, pause=0.05) for n in range(MEMBERS))
    return chord(members, tasks.chaos_collect.s())


def a_chain(i: int) -> chain:
    return chain(
        tasks.chaos_add.s(i, 1, tag=f"{i}-0"),
        tasks.chaos_add.s(10, tag=f"{i}-1"),
        tasks.chaos_add.s(100, tag=f"{i}-2"),
    )


KINDS = {
    "compensated": (compensating_saga, WorkflowStatus.COMPENSATED),
    "saga": (succeeding_saga, WorkflowStatus.SUCCESSFUL),
    "chord": (a_chord, WorkflowStatus.SUCCESSFUL),
    "chain": (a_chain, WorkflowStatus.SUCCESSFUL),
}


def expected_effects(per_kind: int) -> dict[str, list[str]]:
    """Per workflow key, the names of its effects in the order they must happen."""
    effects: dict[str, list[str]] = {}
    for i in range(per_kind):
        # c's write rolled back with its failure; undo c never runs (c never completed).
        effects[f"compensated {i}"] = [f"do:c{i}-a", f"do:c{i}-b", f"undo:c{i}-b", f"undo:c{i}-a"]
        effects[f"saga {i}"] = [f"do:s{i}-a", f"do:s{i}-b", f"do:s{i}-c"]
        effects[f"chain {i}"] = [f"add:{i}-0", f"add:{i}-1", f"add:{i}-2"]
    return effects


def test_chaos_sagas_chords_and_chains_while_a_worker_is_killed_every_2s(start_worker):
    per_kind = 50 if connection.vendor == "postgresql" else 20
    workflows = {
        f"{kind} {i}": KINDS[kind][0](i).enqueue() for i in range(per_kind) for kind in KINDS
    }
    ids = [w.pk for w in workflows.values()]
    workers = [start_worker("--concurrency", "4", env=FAST_LEASES) for _ in range(3)]
    started = time.monotonic()
    victim = kills = 0
    while Workflow.objects.filter(pk__in=ids, status=WorkflowStatus.RUNNING).exists():
        assert time.monotonic() - started < 120, "workflows still running after 120 s of chaos"
        time.sleep(2)
        workers[victim].kill()
        kills += 1
        workers[victim] = start_worker("--concurrency", "4", env=FAST_LEASES)
        victim = (victim + 1) % 3
    assert kills >= 2, "the workflows finished before the chaos really began"
    recovered = [
        job.pk
        for job in Job.objects.filter(workflow_id__in=ids, attempts__gt=1)
        if any("stopped renewing its lease" in str(e) for e in job.errors)
    ]
    assert recovered, "no step was running on a killed worker: the chaos tested nothing"

    # Every workflow ends in its expected state.
    statuses = dict(Workflow.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert statuses == {w.pk: KINDS[key.split()[0]][1] for key, w in workflows.items()}

    # Atomic steps: exactly one effect each, in order; none missing, none doubled.
    events = list(Event.objects.order_by("id").values_list("name", "value"))
    named = [name for name, _ in events if name.startswith(("do:", "undo:", "add:"))]
    doubled = {name: n for name, n in Counter(named).items() if n > 1}
    assert not doubled, f"effects recorded more than once: {doubled}"
    effects = expected_effects(per_kind)
    assert sorted(named) == sorted(name for names in effects.values() for name in names)
    position = {name: index for index, name in enumerate(named)}
    for key, names in effects.items():
        assert sorted(names, key=position.__getitem__) == names, f"{key}: out of order"
    sums = {name: value["sum"] for name, value in events if name.startswith("add:")}
    for i in range(per_kind):
        assert [sums[f"add:{i}-{k}"] for k in range(3)] == [i + 1, i + 11, i + 111]
        assert workflows[f"chain {i}"].result == i + 111

    # Chords: every member once, every callback once with the results in order.
    squares = sorted(value["n"] for name, value in events if name == "wf_square")
    assert squares == sorted(i * 100 + n for i in range(per_kind) for n in range(MEMBERS))
    callbacks = sorted(tuple(value["results"]) for name, value in events if name == "wf_collect")
    expected = [tuple((i * 100 + n) ** 2 for n in range(MEMBERS)) for i in range(per_kind)]
    assert callbacks == sorted(expected)

    # No step's job was created twice; every step ended as its workflow says.
    positions = Counter(
        Job.objects.filter(workflow_id__in=ids).values_list("workflow_id", "workflow_position")
    )
    assert max(positions.values()) == 1, "a step got a second job"
    steps = WorkflowStep.objects.filter(workflow_id__in=ids, kind=WorkflowStep.Kind.TASK)
    by_workflow = {w.pk: key for key, w in workflows.items()}
    for step in steps.select_related("job"):
        kind = by_workflow[step.workflow_id].split()[0]
        if kind == "compensated" and step.path == "2":
            assert step.status == StepStatus.FAILED and step.job.status == JobStatus.FAILED
        elif kind == "compensated" and step.path == "2.undo":
            assert step.status == StepStatus.CANCELLED and step.job_id is None
        elif kind == "saga" and step.role == WorkflowStep.Role.COMPENSATION:
            assert step.status == StepStatus.PENDING and step.job_id is None
        else:
            assert step.status == StepStatus.SUCCESSFUL, (kind, step.path, step.status)
            assert step.job.status == JobStatus.SUCCESSFUL
