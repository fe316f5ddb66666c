"""The job status view: ``GET <prefix>/<token>/`` as JSON, for polling clients.

Only the holder of a valid signed token (see :mod:`django_jobs.http`) gets an
answer; a token bound to a user answers that user only. Tracebacks are never
shown: the error summary is the exception class and message.
"""

from __future__ import annotations

from typing import Any

from django.core import signing
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from django_jobs.http import read_status_token
from django_jobs.models import Job
from django_jobs.status import JobStatus

# Seconds a polling client should wait before asking again.
POLL_AFTER = "1"


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def status_payload(job: Job) -> dict[str, Any]:
    """What a client may know about a job: status, progress, result or error."""
    payload: dict[str, Any] = {
        "id": job.pk,
        "task": job.task_name,
        "status": job.status,
        "finished": job.is_finished,
        "progress": job.progress,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "enqueued_at": _iso(job.enqueued_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }
    if job.status == JobStatus.SUCCESSFUL:
        payload["result"] = job.result
    elif job.status == JobStatus.CANCELLED:
        payload["error"] = {"exception_class": None, "message": "cancelled by an operator"}
    elif job.status == JobStatus.FAILED and job.errors:
        last = job.errors[-1]
        payload["error"] = {
            "exception_class": last.get("exception_class"),
            "message": last.get("message", ""),
        }
    return payload


@never_cache
@require_GET
def job_status(request: HttpRequest, token: str) -> JsonResponse:
    try:
        job_id, owner = read_status_token(token)
    except signing.BadSignature:
        return JsonResponse({"error": "unknown job"}, status=404)
    user = getattr(request, "user", None)
    if owner is not None and (user is None or not user.is_authenticated or str(user.pk) != owner):
        return JsonResponse({"error": "this job belongs to another user"}, status=403)
    job = Job.objects.filter(pk=job_id).first()
    if job is None:  # pruned, or deleted by an operator
        return JsonResponse({"error": "unknown job"}, status=404)
    response = JsonResponse(status_payload(job))
    if not job.is_finished:
        response["Retry-After"] = POLL_AFTER
    return response
