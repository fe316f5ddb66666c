"""Async request-reply: accept slow work at once, let the client poll its status.

::

    # urls.py
    path("jobs/", include("django_jobs.urls")),

    # a view
    def start_export(request):
        job = export_orders.enqueue(request.user.pk)   # a Job, or a django.tasks TaskResult
        return accepted(request, job)                  # 202 Accepted, Location: /jobs/<token>/

The status URL carries a signed token (``SECRET_KEY``, salted), never a bare
job id: it cannot be guessed or altered. It names the job, the database alias
the job was stored in, and its owner. When the request had a logged-in user,
the token is bound to that user and the status view answers nobody else; for
anonymous requests the token itself is the credential. Tokens expire
``DJANGO_JOBS["STATUS_TOKEN_MAX_AGE"]`` seconds after they were issued (7 days
by default); the status view then answers 410 Gone.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS
from django.http import HttpRequest, JsonResponse
from django.tasks import task_backends
from django.urls import NoReverseMatch, reverse

from django_jobs.conf import jobs_settings

# "v2": tokens name their database and carry a timestamp. Tokens of the
# first format (salt "django_jobs.status") fail the signature check.
SALT = "django_jobs.status.v2"


@dataclasses.dataclass(frozen=True, slots=True)
class StatusToken:
    """What a status token names."""

    job_id: int
    database: str
    owner: str | None  # the owner's pk, or None for a bearer token


def job_id_of(job_or_result: Any) -> int:
    """The job id of a :class:`~django_jobs.models.Job` or a ``django.tasks`` TaskResult."""
    from django_jobs.models import Job  # models need the app registry: not at import time

    if isinstance(job_or_result, Job):
        return int(job_or_result.pk)
    result_id = getattr(job_or_result, "id", None)
    if isinstance(result_id, str) and result_id.isdigit():
        return int(result_id)
    raise TypeError(
        f"expected a django_jobs Job or a JobsBackend TaskResult, got {job_or_result!r}"
    )


def database_of(job_or_result: Any) -> str:
    """The database alias a Job or a JobsBackend TaskResult is stored in."""
    from django_jobs.models import Job  # here, as in job_id_of: models need the app registry

    if isinstance(job_or_result, Job):
        return job_or_result._state.db or DEFAULT_DB_ALIAS
    alias = getattr(job_or_result, "backend", None)
    backend = task_backends[alias] if isinstance(alias, str) and alias in task_backends else None
    database = getattr(backend, "database", None)
    if not isinstance(database, str):
        raise TypeError(
            f"expected a django_jobs Job or a JobsBackend TaskResult, got {job_or_result!r}"
        )
    return database


def _owner(user: Any) -> str | None:
    if user is not None and getattr(user, "is_authenticated", False):
        return str(user.pk)
    return None


def token_max_age() -> float:
    """``STATUS_TOKEN_MAX_AGE`` in seconds, checked."""
    max_age = jobs_settings.STATUS_TOKEN_MAX_AGE
    if isinstance(max_age, bool) or not isinstance(max_age, int | float) or not max_age > 0:
        raise ImproperlyConfigured(
            "DJANGO_JOBS['STATUS_TOKEN_MAX_AGE'] must be a positive number of seconds, "
            f"got {max_age!r}"
        )
    return float(max_age)


def status_token(job_or_result: Any, user: Any = None) -> str:
    """A signed, timestamped token naming the job and its database, bound to
    ``user`` when authenticated."""
    payload = [job_id_of(job_or_result), database_of(job_or_result), _owner(user)]
    token_max_age()  # a bad setting fails here, not only when the client polls
    return signing.TimestampSigner(salt=SALT).sign_object(payload)


def read_status_token(token: str) -> StatusToken:
    """What ``token`` names. Raises ``signing.SignatureExpired`` once it is older
    than ``STATUS_TOKEN_MAX_AGE``, ``signing.BadSignature`` if it is tampered
    with, malformed or of an older format."""
    max_age = token_max_age()
    try:
        payload = signing.TimestampSigner(salt=SALT).unsign_object(token, max_age=max_age)
    except ValueError as exc:  # signed, but not a timestamped JSON payload
        raise signing.BadSignature("malformed status token") from exc
    if (
        not isinstance(payload, list)
        or len(payload) != 3
        or isinstance(payload[0], bool)
        or not isinstance(payload[0], int)
        or not isinstance(payload[1], str)
        or not (payload[2] is None or isinstance(payload[2], str))
    ):
        raise signing.BadSignature("malformed status token")
    return StatusToken(job_id=payload[0], database=payload[1], owner=payload[2])


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
