"""``@subscriber``: a task that receives each event of matching topics.

The relay enqueues one job per (event, subscriber); the job's argument is the
event itself (so it survives pruning of the outbox table), and the task body
receives it as an :class:`~django_jobs.outbox.events.Event`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django_jobs.options import MAX_KEY_LENGTH
from django_jobs.outbox.events import topic_matches, validate_pattern
from django_jobs.rows import Event
from django_jobs.tasks import Task, task

R = TypeVar("R")


@dataclasses.dataclass(frozen=True, slots=True)
class Subscription:
    pattern: str
    task: Task[[Event], Any]


_subscriptions: list[Subscription] = []
_by_topic: dict[str, tuple[Task[[Event], Any], ...]] = {}
_lock = threading.Lock()


def as_event(value: Event | Mapping[str, Any]) -> Event:
    return value if isinstance(value, Event) else Event.from_dict(value)


def _wrap(func: Callable[[Event], Any]) -> Callable[..., Any]:
    # The job stores the event as a JSON object; the wrapper hands the function
    # an Event. functools.wraps keeps the module and qualname, so the task's
    # dotted path is the user's function.
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def run_async(event: Event | Mapping[str, Any]) -> Any:
            return await func(as_event(event))

        return run_async

    @functools.wraps(func)
    def run(event: Event | Mapping[str, Any]) -> Any:
        return func(as_event(event))

    return run


def subscriber(*topics: str, **options: Any) -> Callable[[Callable[[Event], R]], Task[[Event], R]]:
    """Declare a task run once for each event whose topic matches one of ``topics``.

    ``@subscriber("order.created")``, ``@subscriber("order.*", "invoice.#",
    queue_name="billing", max_attempts=5)``: patterns use ``*`` for one
    dot-separated word and ``#`` for any number; options are ``@task``'s.
    """
    if not topics:
        raise TypeError('@subscriber needs at least one topic, e.g. @subscriber("order.created")')
    if callable(topics[0]):
        raise TypeError('@subscriber needs a topic: write @subscriber("topic"), not @subscriber')
    patterns = tuple(validate_pattern(topic) for topic in topics)
    make_task = task(**options)  # validates the options before any function is wrapped

    def decorator(func: Callable[[Event], R]) -> Task[[Event], R]:
        created: Task[[Event], R] = make_task(_wrap(func))
        with _lock:
            # Re-importing a module (autoreload, tests) replaces, never duplicates.
            _subscriptions[:] = [s for s in _subscriptions if s.task.name != created.name]
            _subscriptions.extend(Subscription(pattern, created) for pattern in patterns)
            _by_topic.clear()
        return created

    return decorator


def subscribers_for(topic: str) -> tuple[Task[[Event], Any], ...]:
    """Tasks subscribed to ``topic``, each once, in registration order."""
    found = _by_topic.get(topic)
    if found is None:
        with _lock:
            names: dict[str, Task[[Event], Any]] = {}
            for sub in _subscriptions:
                if sub.task.name not in names and topic_matches(sub.pattern, topic):
                    names[sub.task.name] = sub.task
            found = _by_topic[topic] = tuple(names.values())
    return found


def subscriptions() -> list[Subscription]:
    """Every registered (pattern, task), for introspection and checks."""
    with _lock:
        return list(_subscriptions)


def dispatch_key(event_id: int, target: str) -> str:
    """Idempotency key of the job delivering ``event_id`` to ``target``."""
    key = f"outbox:{event_id}:{target}"
    if len(key) > MAX_KEY_LENGTH:
        digest = hashlib.sha256(target.encode()).hexdigest()[:32]
        key = f"outbox:{event_id}:{digest}"
    return key
