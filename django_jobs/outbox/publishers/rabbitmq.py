"""RabbitMQ publisher (the ``rabbitmq`` extra, pika).

Publishes the event JSON with publisher confirms (the broker has taken
responsibility for the message before the attempt counts as delivered),
``delivery_mode=2`` (persistent), ``message_id`` = the event id (consumers
dedupe on it: delivery is at-least-once), ``type`` = the topic.

Options: ``URL`` (``amqp://guest:guest@localhost:5672/%2F``), ``EXCHANGE``
(default ``""``, the default exchange), ``ROUTING_KEY`` (default: the event's
topic), ``MANDATORY`` (default True: a message no queue is bound for is an
error, not a silent drop).

pika connections are not thread-safe, so each worker thread keeps its own. A
cached connection found dead (broker restarted, connection closed) is replaced
once within the same attempt; anything else fails the attempt and the job
retries with backoff.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

import pika
import pika.exceptions

from django_jobs.codec import encode
from django_jobs.exceptions import describe_exception
from django_jobs.outbox.publishers import DeliveryError, Publisher, redact_url
from django_jobs.rows import Event

# Errors that mean "this connection or channel is gone": reconnect and try again.
_CONNECTION_ERRORS = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    OSError,
)


class RabbitMQPublisher(Publisher):
    OPTIONS: ClassVar[frozenset[str]] = frozenset({"URL", "EXCHANGE", "ROUTING_KEY", "MANDATORY"})

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        super().__init__(name, options)
        self.url = options.get("URL", "amqp://guest:guest@localhost:5672/%2F")
        try:
            self.parameters = pika.URLParameters(self.url)
        except Exception as exc:
            url, detail = redact_url(self.url), redact_url(describe_exception(exc))
            raise self.error(f"URL {url!r} is not an AMQP URL: {detail}") from exc
        self.parameters.socket_timeout = self.timeout
        self.parameters.stack_timeout = self.timeout
        self.parameters.blocked_connection_timeout = self.timeout
        self.parameters.connection_attempts = 1
        self.exchange = str(options.get("EXCHANGE", ""))
        routing_key = options.get("ROUTING_KEY")
        self.routing_key: str | None = str(routing_key) if routing_key is not None else None
        self.mandatory = bool(options.get("MANDATORY", True))
        self._local = threading.local()
        self._all: list[Any] = []  # every thread's connection, for close()
        self._lock = threading.Lock()

    def _channel(self) -> Any:
        channel = getattr(self._local, "channel", None)
        if channel is not None and channel.is_open:
            return channel
        self._drop()
        connection = pika.BlockingConnection(self.parameters)
        channel = connection.channel()
        channel.confirm_delivery()
        self._local.connection, self._local.channel = connection, channel
        with self._lock:
            self._all.append(connection)
        return channel

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = self._local.channel = None
        if connection is not None:
            with self._lock:
                if connection in self._all:
                    self._all.remove(connection)
            with contextlib.suppress(Exception):  # already broken: nothing to release
                if connection.is_open:
                    connection.close()

    def publish(self, event: Event) -> None:
        body = encode(event.as_dict()).encode()
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=str(event.id),
            type=event.topic,
            timestamp=int(event.created_at.timestamp()),
            headers={"event_id": event.id, "topic": event.topic, "key": event.key},
        )
        routing_key = self.routing_key if self.routing_key is not None else event.topic
        reused = getattr(self._local, "channel", None) is not None
        for attempt in (1, 2):
            try:
                channel = self._channel()
                channel.basic_publish(
                    self.exchange, routing_key, body, properties, mandatory=self.mandatory
                )
                return
            except _CONNECTION_ERRORS as exc:
                self._drop()
                if attempt == 2 or not reused:
                    raise DeliveryError(
                        f"RabbitMQ {self.parameters.host}:{self.parameters.port} "
                        f"unavailable: {describe_exception(exc)}"
                    ) from exc
            except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
                raise DeliveryError(
                    f"RabbitMQ did not accept event {event.id} for exchange "
                    f"{self.exchange!r} routing key {routing_key!r}: {type(exc).__name__}"
                ) from exc

    def close(self) -> None:
        with self._lock:
            connections, self._all = self._all, []
        for connection in connections:
            with contextlib.suppress(Exception):  # already broken: nothing to release
                connection.close()
