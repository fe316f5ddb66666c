"""Webhook publisher: HTTP POST of the event JSON, signed with HMAC-SHA256.

Uses httpx (the ``webhook`` extra): typed, explicit timeouts on every
request, and one pooled, thread-safe client per publisher.

Each request carries:

- ``Content-Type: application/json``; the body is :meth:`Event.as_dict`.
- ``Idempotency-Key`` and ``X-Django-Jobs-Event-Id``: the event id, the same on
  every retry, for the receiver to dedupe (delivery is at-least-once).
- ``X-Django-Jobs-Topic``.
- ``X-Django-Jobs-Signature: t=<unix seconds>,v1=<hex>`` where ``hex`` is
  HMAC-SHA256 of ``"<t>." + body`` under ``SECRET``; check it with
  :func:`verify_signature` (the timestamp bounds replays).

Any response other than 2xx, a timeout or a connection error fails the
attempt; the job retries with the publisher's backoff.

Options: ``URL`` (required), ``SECRET`` (required), ``HEADERS`` (extra headers).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from django_jobs.outbox.events import Event
from django_jobs.outbox.publishers import DeliveryError, Publisher

SIGNATURE_HEADER = "X-Django-Jobs-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify_signature(
    secret: str, body: bytes, header: str, *, tolerance: float = 300.0, now: float | None = None
) -> bool:
    """True if ``header`` signs ``body`` under ``secret`` within ``tolerance`` seconds."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


class WebhookPublisher(Publisher):
    OPTIONS: ClassVar[frozenset[str]] = frozenset({"URL", "SECRET", "HEADERS"})
    REQUIRED: ClassVar[frozenset[str]] = frozenset({"URL", "SECRET"})

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        super().__init__(name, options)
        url, secret = options["URL"], options["SECRET"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise self.error(f"URL must be an http:// or https:// URL, got {url!r}")
        if not isinstance(secret, str) or not secret:
            raise self.error("SECRET must be a non-empty string")
        extra = options.get("HEADERS", {})
        if not isinstance(extra, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in extra.items()
        ):
            raise self.error("HEADERS must be a dict of strings")
        self.url = url
        self.secret = secret
        self.extra_headers = dict(extra)
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = httpx.Client(timeout=self.timeout, follow_redirects=False)
        return self._client

    def publish(self, event: Event) -> None:
        body = json.dumps(event.as_dict(), separators=(",", ":"), allow_nan=False).encode()
        headers = {
            **self.extra_headers,
            "Content-Type": "application/json",
            "Idempotency-Key": str(event.id),
            "X-Django-Jobs-Event-Id": str(event.id),
            "X-Django-Jobs-Topic": event.topic,
            SIGNATURE_HEADER: sign(self.secret, int(time.time()), body),
        }
        try:
            response = self.client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"POST {self.url} failed: {type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise DeliveryError(
                f"POST {self.url} answered HTTP {response.status_code}: {response.text[:200]}"
            )

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
