"""The app's tables, one module per concern; import them from here.

- :mod:`.jobs`: Job (and the admin's Overview proxy), DeadLetter
- :mod:`.outbox`: OutboxEvent
- :mod:`.workers`: Worker
- :mod:`.schedules`: Schedule
- :mod:`.workflows`: Workflow, WorkflowStep
"""

from django_jobs.models.jobs import DeadLetter, Job, JobQuerySet, Overview
from django_jobs.models.outbox import OutboxEvent, OutboxEventQuerySet
from django_jobs.models.schedules import Schedule, ScheduleQuerySet
from django_jobs.models.workers import Worker
from django_jobs.models.workflows import Workflow, WorkflowStep

__all__ = [
    "DeadLetter",
    "Job",
    "JobQuerySet",
    "OutboxEvent",
    "OutboxEventQuerySet",
    "Overview",
    "Schedule",
    "ScheduleQuerySet",
    "Worker",
    "Workflow",
    "WorkflowStep",
]
