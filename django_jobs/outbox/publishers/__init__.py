"""External publishers: deliver outbox events to systems outside the database.

Configured in ``DJANGO_JOBS["OUTBOX_PUBLISHERS"]`` (name -> options), read
lazily and re-read when the setting changes. Each delivery of one event to one
publisher is a job of the built-in task
:func:`django_jobs.outbox.delivery.deliver`, so retries, backoff, timeouts and
dead letters are the job engine's. Delivery is at-least-once: receivers dedupe
on the event id.

Options every publisher takes (the backend adds its own):

- ``BACKEND``: ``"webhook"``, ``"rabbitmq"`` or the dotted path of a
  :class:`Publisher` subclass.
- ``TOPICS``: topic patterns to deliver (default ``["#"]``: every topic).
- ``MAX_ATTEMPTS`` (8), ``BACKOFF`` ("exponential"; any job backoff name),
  ``QUEUE`` (the default queue), ``PRIORITY`` (0), ``TIMEOUT`` (10 seconds per
  attempt).
"""

from __future__ import annotations

import abc
import re
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from django_jobs.backoff import BACKOFF_NAMES, BackoffSpec, compute_delay
from django_jobs.conf import jobs_settings
from django_jobs.exceptions import exception_message
from django_jobs.options import validate_priority, validate_queue_name
from django_jobs.outbox.events import topic_matches, validate_pattern
from django_jobs.rows import Event

BACKENDS = {
    "webhook": "django_jobs.outbox.publishers.webhook.WebhookPublisher",
    "rabbitmq": "django_jobs.outbox.publishers.rabbitmq.RabbitMQPublisher",
}
COMMON_OPTIONS = frozenset(
    {"BACKEND", "TOPICS", "MAX_ATTEMPTS", "BACKOFF", "QUEUE", "PRIORITY", "TIMEOUT"}
)


# The userinfo of a URL: after "scheme://", up to the last "@" before the path.
_USERINFO = re.compile(r"(?<=://)[^/?#\s]*@")


def redact_url(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``."""
    return _USERINFO.sub("***@", text)


class DeliveryError(Exception):
    """An external system did not accept an event (the attempt is retried)."""


class Publisher(abc.ABC):
    """Delivers events to one external system. Subclasses implement :meth:`publish`
    and list their own settings in ``OPTIONS``; ``publish`` is called from worker
    threads, concurrently."""

    OPTIONS: ClassVar[frozenset[str]] = frozenset()
    REQUIRED: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        self.name = name
        unknown = set(options) - COMMON_OPTIONS - self.OPTIONS
        if unknown:
            valid = ", ".join(sorted(COMMON_OPTIONS | self.OPTIONS))
            raise self.error(f"unknown option(s) {', '.join(sorted(unknown))}; valid: {valid}")
        missing = self.REQUIRED - set(options)
        if missing:
            raise self.error(f"missing option(s) {', '.join(sorted(missing))}")
        topics = options.get("TOPICS", ["#"])
        if isinstance(topics, str) or not topics:
            raise self.error("TOPICS must be a non-empty list of topic patterns")
        try:
            self.topics = tuple(validate_pattern(t) for t in topics)
            self.queue_name: str | None = (
                validate_queue_name(options["QUEUE"]) if "QUEUE" in options else None
            )
            self.priority = validate_priority(options.get("PRIORITY", 0))
        except ValueError as exc:
            raise self.error(str(exc)) from exc
        self.max_attempts = self._positive("MAX_ATTEMPTS", options.get("MAX_ATTEMPTS", 8), int)
        self.timeout = float(self._positive("TIMEOUT", options.get("TIMEOUT", 10.0), float))
        backoff = options.get("BACKOFF", "exponential")
        if not (callable(backoff) or backoff in BACKOFF_NAMES):
            raise self.error(f"BACKOFF must be one of {', '.join(BACKOFF_NAMES)} or a callable")
        self.backoff: BackoffSpec = backoff

    def error(self, message: str) -> ImproperlyConfigured:
        return ImproperlyConfigured(f"DJANGO_JOBS['OUTBOX_PUBLISHERS'][{self.name!r}]: {message}")

    def _positive(self, option: str, value: Any, kind: type) -> Any:
        kinds = (int,) if kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
            raise self.error(f"{option} must be a positive number, got {value!r}")
        return value

    def accepts(self, topic: str) -> bool:
        return any(topic_matches(pattern, topic) for pattern in self.topics)

    def retry_delay(self, attempt: int) -> float:
        """Seconds before the next attempt after failed attempt ``attempt``."""
        return compute_delay(
            self.backoff,
            attempt,
            base=float(jobs_settings.BACKOFF_BASE),
            cap=float(jobs_settings.BACKOFF_MAX),
        )

    @abc.abstractmethod
    def publish(self, event: Event) -> None:
        """Deliver ``event``; raise to have the attempt retried."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (called when settings change)."""


_publishers: dict[str, Publisher] | None = None
_lock = threading.Lock()


def _build(name: str, options: Any) -> Publisher:
    where = f"DJANGO_JOBS['OUTBOX_PUBLISHERS'][{name!r}]"
    if not isinstance(options, Mapping) or "BACKEND" not in options:
        raise ImproperlyConfigured(f"{where} must be a dict with a BACKEND")
    backend = options["BACKEND"]
    path = BACKENDS.get(backend, str(backend))
    try:
        cls = import_string(path)
    except ImportError as exc:
        hint = " (pip install 'django-dbjobs[rabbitmq]')" if backend == "rabbitmq" else ""
        hint = " (pip install 'django-dbjobs[webhook]')" if backend == "webhook" else hint
        message = f"{where}: cannot load BACKEND {backend!r}: {exception_message(exc)}{hint}"
        raise ImproperlyConfigured(message) from exc
    if not (isinstance(cls, type) and issubclass(cls, Publisher)):
        raise ImproperlyConfigured(f"{where}: BACKEND {backend!r} is not a Publisher subclass")
    return cls(name, options)


def get_publishers() -> dict[str, Publisher]:
    """Configured publishers by name (built on first use, then cached)."""
    global _publishers
    if _publishers is None:
        with _lock:
            if _publishers is None:
                config = jobs_settings.OUTBOX_PUBLISHERS or {}
                if not isinstance(config, Mapping):
                    raise ImproperlyConfigured(
                        "DJANGO_JOBS['OUTBOX_PUBLISHERS'] must be a dict: name -> options"
                    )
                _publishers = {str(name): _build(str(name), opts) for name, opts in config.items()}
    return _publishers


def get_publisher(name: str) -> Publisher:
    try:
        return get_publishers()[name]
    except KeyError:
        raise LookupError(
            f"outbox publisher {name!r} is not configured in DJANGO_JOBS['OUTBOX_PUBLISHERS']"
        ) from None


def reset_publishers() -> None:
    """Drop cached publishers (and their connections); the next use rebuilds them."""
    global _publishers
    with _lock:
        old, _publishers = _publishers, None
    for publisher in (old or {}).values():
        publisher.close()


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "DJANGO_JOBS":
        reset_publishers()
