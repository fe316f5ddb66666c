"""Rows in every state the admin shows, written directly (the admin is under test)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import Permission, User
from django.utils import timezone

from django_jobs.models import DeadLetter, Job, Worker
from django_jobs.status import JobStatus

TASK = "tests.testapp.tasks.add"


def error_entry(attempt: int, message: str = "boom", exc: str = "builtins.ValueError") -> dict:
    name = exc.rpartition(".")[2]
    return {
        "attempt": attempt,
        "exception_class": exc,
        "message": message,
        "traceback": (
            "Traceback (most recent call last):\n"
            f'  File "/app/tasks.py", line {10 + attempt}, in add\n'
            f"    raise {name}({message!r})\n"
            f"{name}: {message} (attempt {attempt})\n"
        ),
        "at": (timezone.now() - timedelta(minutes=10 - attempt)).isoformat(),
        "worker_id": str(uuid.uuid4()),
    }


def make_job(status: str = JobStatus.READY, **fields: Any) -> Job:
    now = timezone.now()
    values: dict[str, Any] = {
        "task_name": TASK,
        "queue_name": "default",
        "args": [1, 2],
        "kwargs": {},
        "status": status,
        "run_after": now - timedelta(seconds=5),
        "enqueued_at": now - timedelta(minutes=20),
    }
    if status != JobStatus.READY:
        values.update(attempts=1, started_at=now - timedelta(seconds=30))
    if status == JobStatus.RUNNING:
        values.update(
            worker_id=uuid.uuid4(),
            claim_token=uuid.uuid4(),
            lease_expires_at=now + timedelta(seconds=30),
        )
    if status == JobStatus.SUCCESSFUL:
        values.update(result={"sum": 3}, finished_at=now - timedelta(seconds=20))
    if status == JobStatus.FAILED:
        values.update(
            attempts=2,
            max_attempts=2,
            errors=[error_entry(1), error_entry(2)],
            finished_at=now - timedelta(seconds=20),
        )
    if status == JobStatus.CANCELLED:
        values.update(attempts=0, started_at=None, finished_at=now - timedelta(seconds=20))
    values.update(fields)
    return Job.objects.create(**values)


def make_scheduled(**fields: Any) -> Job:
    return make_job(JobStatus.READY, run_after=timezone.now() + timedelta(hours=1), **fields)


def make_dead_letter(job: Job | None = None, **fields: Any) -> DeadLetter:
    job = job or make_job(JobStatus.FAILED)
    values: dict[str, Any] = {
        "job_id": job.pk,
        "task_name": job.task_name,
        "queue_name": job.queue_name,
        "priority": job.priority,
        "args": job.args,
        "kwargs": job.kwargs,
        "reason": "attempts exhausted (2/2): ValueError: boom",
        "errors": job.errors,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
    }
    values.update(fields)
    return DeadLetter.objects.create(**values)


def make_worker(**fields: Any) -> Worker:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "hostname": "web-1",
        "pid": 4242,
        "queues": [],
        "concurrency": 4,
    }
    values.update(fields)
    return Worker.objects.create(**values)


def make_user(username: str, *perms: str, superuser: bool = False, staff: bool = True) -> User:
    """A user with password "pw" and the given "app.codename" permissions."""
    user = User.objects.create_user(username, password="pw", is_staff=staff)
    if superuser:
        user.is_superuser = True
        user.save()
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user
