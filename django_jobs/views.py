"""The job status view (``GET <prefix>/<token>/``), and the operators' views
``metrics`` (Prometheus) and ``health`` (JSON, 200/503).

The job status view answers polling clients.

Only the holder of a valid signed token (see :mod:`django_jobs.http`) gets an
answer; a token bound to a user answers that user only. The job is read from
the database the token names. Tracebacks are never shown: the error summary is
the exception class and message.

The token is a credential: refusals (403, 404, 405, 410) are logged here with
the token replaced by ``<token>``, instead of Django's ``django.request``
warning that would log the full path.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.cache import never_cache

from django_jobs.conf import jobs_settings
from django_jobs.http import read_status_token
from django_jobs.models import Job
from django_jobs.observability.health import check_health
from django_jobs.status import JobStatus

logger = logging.getLogger("django_jobs.views")

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


def _refused(request: HttpRequest, token: str, response: HttpResponse, reason: str) -> HttpResponse:
    """Log a refusal without the token, and keep Django from logging the path."""
    logger.warning(
        "%s (%s): %s",
        reason,
        request.method,
        request.path.replace(token, "<token>"),
        extra={"status_code": response.status_code},
    )
    # django.utils.log.log_response skips a response marked as logged.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


@never_cache
def job_status(request: HttpRequest, token: str) -> HttpResponse:
    """The job's status as JSON; 404 for an unknown job or a bad token, 410
    once the token expired, 403 for a token bound to another user."""
    if request.method != "GET":
        return _refused(request, token, HttpResponseNotAllowed(["GET"]), "Method Not Allowed")
    try:
        found = read_status_token(token)
    except signing.SignatureExpired:
        gone = JsonResponse({"error": "this status link has expired"}, status=410)
        return _refused(request, token, gone, "Expired job status token")
    except signing.BadSignature:
        unknown = JsonResponse({"error": "unknown job"}, status=404)
        return _refused(request, token, unknown, "Bad job status token")
    user = getattr(request, "user", None)
    owner = found.owner
    if owner is not None and (user is None or not user.is_authenticated or str(user.pk) != owner):
        forbidden = JsonResponse({"error": "this job belongs to another user"}, status=403)
        return _refused(request, token, forbidden, "Job of another user")
    job = None
    if found.database in settings.DATABASES:  # else: the alias was removed since
        job = Job.objects.using(found.database).filter(pk=found.job_id).first()
    if job is None:  # pruned, or deleted by an operator
        unknown = JsonResponse({"error": "unknown job"}, status=404)
        return _refused(request, token, unknown, "Unknown job")
    response = JsonResponse(status_payload(job))
    if not job.is_finished:
        response["Retry-After"] = POLL_AFTER
    return response


def _database(request: HttpRequest) -> str | None:
    alias = request.GET.get("database") or "default"
    return alias if alias in settings.DATABASES else None


def may_scrape(request: HttpRequest) -> bool:
    """A staff user, or the ``Authorization: Bearer <METRICS_TOKEN>`` header."""
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    token = jobs_settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if not token or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header.removeprefix("Bearer ").encode(), str(token).encode())


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """The database gauges in Prometheus' text format (staff or METRICS_TOKEN)."""
    if not may_scrape(request):
        response = HttpResponse("metrics need a staff user or METRICS_TOKEN\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="django_jobs"'
        return response
    alias = _database(request)
    if alias is None:
        return HttpResponse("unknown database\n", status=404)
    # prometheus-client is the optional extra [metrics]: imported when scraped.
    from django_jobs.observability.metrics import CONTENT_TYPE, render

    return HttpResponse(render(alias), content_type=CONTENT_TYPE)


@never_cache
def health(request: HttpRequest) -> HttpResponse:
    """JSON health: 200 when the database answers and a worker heartbeats, else 503."""
    alias = _database(request)
    if alias is None:
        return JsonResponse({"error": "unknown database"}, status=404)
    verdict = check_health(alias)
    return JsonResponse(verdict, status=200 if verdict["healthy"] else 503)
