"""Async request-reply: accept slow work at once, let the client poll its status.

::

    # urls.py
    path("jobs/", include("django_jobs.urls")),

    # a view
    def start_export(request):
        job = export_orders.enqueue(request.user.pk)   # a Job, or a django.tasks TaskResult
        return accepted(request, job)                  # 202 Accepted, Location: /jobs/<token>/

The status URL carries a signed token (``SECRET_KEY``, salted), never a bare
job id: it cannot be guessed or altered. When the request had a logged-in
user, the token is bound to that user and the status view answers nobody
else; for anonymous requests the token itself is the credential.
"""

from __future__ import annotations

from typing import Any

from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, JsonResponse
from django.urls import NoReverseMatch, reverse

SALT = "django_jobs.status"


def job_id_of(job_or_result: Any) -> int:
    """The job id of a :class:`~django_jobs.models.Job` or a ``django.tasks`` TaskResult."""
    from django_jobs.models import Job

    if isinstance(job_or_result, Job):
        return int(job_or_result.pk)
    result_id = getattr(job_or_result, "id", None)
    if isinstance(result_id, str) and result_id.isdigit():
        return int(result_id)
    raise TypeError(
        f"expected a django_jobs Job or a JobsBackend TaskResult, got {job_or_result!r}"
    )


def _owner(user: Any) -> str | None:
    if user is not None and getattr(user, "is_authenticated", False):
        return str(user.pk)
    return None


def status_token(job_or_result: Any, user: Any = None) -> str:
    """A signed token naming the job, bound to ``user`` when authenticated."""
    payload = [job_id_of(job_or_result), _owner(user)]
    return signing.Signer(salt=SALT).sign_object(payload)


def read_status_token(token: str) -> tuple[int, str | None]:
    """``(job id, owner pk or None)``; raises ``signing.BadSignature`` if tampered."""
    payload = signing.Signer(salt=SALT).unsign_object(token)
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or not isinstance(payload[0], int)
        or not (payload[1] is None or isinstance(payload[1], str))
    ):
        raise signing.BadSignature("malformed status token")
    return payload[0], payload[1]


def status_url(request: HttpRequest, job_or_result: Any) -> str:
    """The path of the job's status view, for the user of ``request``."""
    token = status_token(job_or_result, getattr(request, "user", None))
    try:
        return reverse("django_jobs:job-status", kwargs={"token": token})
    except NoReverseMatch:
        raise ImproperlyConfigured(
            "job status URLs need path('jobs/', include('django_jobs.urls')) in your URLconf"
        ) from None


def accepted(
    request: HttpRequest, job_or_result: Any, data: dict[str, Any] | None = None
) -> JsonResponse:
    """``202 Accepted`` with ``Location`` pointing at the job's status view."""
    url = status_url(request, job_or_result)
    body = {"id": job_id_of(job_or_result), "status_url": url, **(data or {})}
    return JsonResponse(body, status=202, headers={"Location": url, "Retry-After": "1"})
