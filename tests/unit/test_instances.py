"""Fast Job instances for rows the engine wrote: same values as Model.__init__."""

from __future__ import annotations

from django.db.models.signals import post_init

from django_jobs.engine.instances import builder
from django_jobs.models import Job
from django_jobs.status import JobStatus


def test_builder_fills_defaults_like_the_constructor():
    fields = {"id": 7, "task_name": "app.tasks.f", "args": [1], "kwargs": {}}
    fast = builder(Job, database="default")(fields)
    slow = Job(**fields)
    for field in Job._meta.concrete_fields:
        assert getattr(fast, field.attname) == getattr(slow, field.attname), field.name
    assert fast.status == JobStatus.READY and fast.errors == [] and fast.meta == {}
    assert (fast._state.adding, fast._state.db) == (False, "default")


def test_builder_gives_each_instance_its_own_mutable_defaults():
    build = builder(Job)
    first, second = build({"id": 1}), build({"id": 2})
    first.errors.append("x")
    assert second.errors == []
    assert first._state.adding is True and first._state.db is None


def test_builder_runs_init_signal_receivers_when_there_are_any():
    seen: list[int] = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance.pk)

    post_init.connect(receiver, sender=Job)
    try:
        job = builder(Job, database="default")({"id": 3, "task_name": "t"})
    finally:
        post_init.disconnect(receiver, sender=Job)
    assert seen == [3]
    assert (job.pk, job._state.adding, job._state.db) == (3, False, "default")
