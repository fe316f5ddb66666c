"""Webhook publisher: HTTP POST of the event JSON, signed with HMAC-SHA256.

Uses httpx (the ``webhook`` extra): typed, explicit timeouts on every
request, and one pooled, thread-safe client per publisher.

Each request carries:

- ``Content-Type: application/json``; the body is :meth:`Event.as_dict`.
- ``Idempotency-Key`` and ``X-Django-Jobs-Event-Id``: the event id, the same on
  every retry, for the receiver to dedupe (delivery is at-least-once).
- ``X-Django-Jobs-Topic``: the topic, percent-encoded as UTF-8 (RFC 3986)
  where it is not printable ASCII, and ``%`` itself as ``%25``:
  ``hook.%D0%B7%D0%B0%D0%BA%D0%B0%D0%B7`` for ``hook.заказ``; decode with
  ``urllib.parse.unquote``. The body's ``topic`` is the topic as published.
- ``X-Django-Jobs-Signature: t=<unix seconds>,v1=<hex>`` where ``hex`` is
  HMAC-SHA256 of ``"<t>." + body`` under ``SECRET``; check it with
  :func:`verify_signature` (the timestamp bounds replays).

Any response other than 2xx, a timeout or a connection error fails the
attempt; the job retries with the publisher's backoff.

Options: ``URL`` (required), ``SECRET`` (required), ``HEADERS`` (extra headers,
printable ASCII). Credentials in the URL (``https://user:password@host/``) are
sent as HTTP Basic auth and appear in no error or log message: the URL is
shown without them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import string
import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from django_jobs.codec import encode
from django_jobs.outbox.publishers import DeliveryError, Publisher, redact_url
from django_jobs.rows import Event

SIGNATURE_HEADER = "X-Django-Jobs-Signature"
TOPIC_HEADER = "X-Django-Jobs-Topic"

# Sent as is: letters, digits and ASCII punctuation but "%" (the escape
# character); anything else, space and CR/LF included, is percent-encoded.
_TOPIC_SAFE = "".join(sorted(set(string.punctuation) - {"%"}))
_SIGNATURE = re.compile(r"t=([0-9]{1,15}),v1=([0-9a-f]{64})")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def topic_header(topic: str) -> str:
    """The ``X-Django-Jobs-Topic`` value: any topic, as printable ASCII."""
    return quote(topic, safe=_TOPIC_SAFE)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify_signature(
    secret: str, body: bytes, header: str, *, tolerance: float = 300.0, now: float | None = None
) -> bool:
    """True if ``header`` signs ``body`` under ``secret`` within ``tolerance`` seconds.

    Exactly ``t=<decimal digits>,v1=<64 lowercase hex digits>``; anything
    else (other characters, parts, order or lengths) is False, never an error.
    """
    if not isinstance(header, str):
        return False
    match = _SIGNATURE.fullmatch(header)
    if match is None:
        return False
    timestamp = int(match[1])
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).encode()
    return hmac.compare_digest(expected, header.encode())


class WebhookPublisher(Publisher):
    OPTIONS: ClassVar[frozenset[str]] = frozenset({"URL", "SECRET", "HEADERS"})
    REQUIRED: ClassVar[frozenset[str]] = frozenset({"URL", "SECRET"})

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        super().__init__(name, options)
        url, secret = options["URL"], options["SECRET"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            shown = redact_url(url) if isinstance(url, str) else url
            raise self.error(f"URL must be an http:// or https:// URL, got {shown!r}")
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise self.error(f"URL {redact_url(url)!r} is invalid: {redact_url(str(exc))}") from exc
        if not isinstance(secret, str) or not secret:
            raise self.error("SECRET must be a non-empty string")
        extra = options.get("HEADERS", {})
        if not isinstance(extra, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in extra.items()
        ):
            raise self.error("HEADERS must be a dict of strings")
        for name, value in extra.items():
            if not _HEADER_NAME.fullmatch(name):
                raise self.error(f"HEADERS: {name!r} is not a valid HTTP header name")
            if not (value.isascii() and value.isprintable()):
                # The value is not shown: extra headers often carry a secret.
                raise self.error(f"HEADERS[{name!r}] must be printable ASCII, without line breaks")
        # Credentials go in the Authorization header, never in the URL: the URL
        # is shown in errors and logged by httpx.
        self.auth: httpx.BasicAuth | None = None
        if parsed.userinfo:
            self.auth = httpx.BasicAuth(parsed.username, parsed.password)
            parsed = parsed.copy_with(username=None, password=None)
        self.url = str(parsed)
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
        body = encode(event.as_dict()).encode()
        headers = {
            **self.extra_headers,
            "Content-Type": "application/json",
            "Idempotency-Key": str(event.id),
            "X-Django-Jobs-Event-Id": str(event.id),
            TOPIC_HEADER: topic_header(event.topic),
            SIGNATURE_HEADER: sign(self.secret, int(time.time()), body),
        }
        try:
            response = self.client.post(
                self.url, content=body, headers=headers, auth=self.auth or httpx.USE_CLIENT_DEFAULT
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"POST {self.url} failed: {type(exc).__name__}: {redact_url(str(exc))}"
            ) from exc
        if not response.is_success:
            raise DeliveryError(
                f"POST {self.url} answered HTTP {response.status_code}: "
                f"{redact_url(response.text[:200])}"
            )

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
