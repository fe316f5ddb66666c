"""Transactional outbox: ``publish()`` inside a transaction, ``@subscriber`` to react.

Placeholder until the outbox lands (issue 6): both names exist so that the
public API imports, and both raise NotImplementedError when used.
"""

from __future__ import annotations

from typing import Any


def publish(topic: str, payload: Any, *, key: str | None = None, headers: Any = None) -> Any:
    raise NotImplementedError("django_jobs.outbox.publish is not implemented yet")


def subscriber(topic: str) -> Any:
    raise NotImplementedError("django_jobs.outbox.subscriber is not implemented yet")
