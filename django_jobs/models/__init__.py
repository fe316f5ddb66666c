"""The app's tables, one module per concern; import them from here.

- :mod:`.jobs`: Job (and the admin's Overview proxy), DeadLetter
- :mod:`.outbox`: OutboxEvent
- :mod:`.workers`: Worker
- :mod:`.schedules`: Schedule
- :mod:`.alerts`: AlertState, AlertEvent
- :mod:`.circuits`: Circuit, CircuitEvent (circuit breakers)
- :mod:`.queues`: Queue (pause), FlowLane (concurrency / rate gates)
- :mod:`.workflows`: Workflow, WorkflowStep
"""

from django_jobs.models.alerts import AlertEvent, AlertState
from django_jobs.models.circuits import Circuit, CircuitEvent
from django_jobs.models.jobs import DeadLetter, Job, JobQuerySet, Overview
from django_jobs.models.outbox import OutboxEvent, OutboxEventQuerySet
from django_jobs.models.queues import FlowLane, Queue
from django_jobs.models.schedules import Schedule, ScheduleQuerySet
from django_jobs.models.workers import Worker
from django_jobs.models.workflows import Workflow, WorkflowStep

__all__ = [
    "AlertEvent",
    "AlertState",
    "Circuit",
    "CircuitEvent",
    "DeadLetter",
    "FlowLane",
    "Job",
    "JobQuerySet",
    "OutboxEvent",
    "OutboxEventQuerySet",
    "Overview",
    "Queue",
    "Schedule",
    "ScheduleQuerySet",
    "Worker",
    "Workflow",
    "WorkflowStep",
]
