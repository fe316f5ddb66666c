"""What an event is: validation of what ``publish()`` accepts, the
:class:`Event` subscribers receive, and topic patterns.

Topics are dot-separated words (``order.created``) of printable characters of
any script (``hook.заказ``): no whitespace, no control or format characters,
no wildcards ``*`` or ``#``; at most 255 bytes in UTF-8 (the limit of a
RabbitMQ routing key). Patterns use RabbitMQ
topic-exchange rules: ``*`` matches exactly one word, ``#`` zero or more
words; ``order.*`` matches ``order.created`` but not ``order.item.added``,
``order.#`` matches both (and ``order`` itself).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from django_jobs.codec import dumps, reject_unstorable, unstorable_text
from django_jobs.rows import NewEvent

MAX_TOPIC_LENGTH = 255
MAX_KEY_LENGTH = 255
_WILDCARDS = frozenset("*#")


def _encoded(value: Any, what: str) -> str:
    return reject_unstorable(dumps(value, what), what)


def _unfit_character(text: str) -> tuple[int, str, str] | None:
    """``(position, character, kind)`` of the first whitespace, control or
    invisible character of ``text``, or None."""
    for position, char in enumerate(text):
        if unicodedata.category(char) == "Cc":
            return position, char, "a control character"
        if char.isspace():
            return position, char, "whitespace"
        if not char.isprintable():  # format, private use, unassigned, surrogates
            return position, char, "a non-printable character"
    return None


def validate_topic(topic: Any) -> str:
    """``topic`` if publish() accepts it, else ValueError naming the problem."""
    if not isinstance(topic, str) or not topic.strip():
        raise ValueError(f"outbox topic must be a non-empty string, got {topic!r}")
    reason = unstorable_text(topic)
    if reason is not None:
        raise ValueError(f"outbox topic {topic!r} {reason}")
    unfit = _unfit_character(topic)
    if unfit is not None:
        position, char, kind = unfit
        # Topics travel in HTTP headers and AMQP routing keys and are matched
        # word by word: a CR/LF or a non-printable character has no business there.
        raise ValueError(
            f"outbox topic {topic!r} contains U+{ord(char):04X} ({kind}) at position "
            f"{position}: topics are printable characters without whitespace"
        )
    size = len(topic.encode())
    if size > MAX_TOPIC_LENGTH:
        raise ValueError(f"outbox topic is longer than {MAX_TOPIC_LENGTH} bytes in UTF-8 ({size})")
    if _WILDCARDS & set(topic):
        raise ValueError(
            f"outbox topic {topic!r} contains a wildcard: publish to a concrete topic; "
            "patterns ('*', '#') are for subscribers"
        )
    return topic


def new_event(topic: Any, payload: Any, key: Any = None, headers: Any = None) -> NewEvent:
    """Validate one event; raises TypeError/ValueError naming the problem."""
    topic = validate_topic(topic)
    if key is not None:
        if not isinstance(key, str) or not key:
            raise TypeError(
                f"outbox key must be a non-empty string or None, got {key!r} "
                f"({type(key).__name__}); pass str(...) for ids"
            )
        if len(key) > MAX_KEY_LENGTH:
            raise ValueError(f"outbox key is longer than {MAX_KEY_LENGTH} characters")
        reason = unstorable_text(key)
        if reason is not None:
            raise ValueError(f"outbox key {key!r} {reason}")
    if headers is None:
        headers = {}
    if not isinstance(headers, Mapping):
        raise TypeError(f"outbox headers must be a dict, got {type(headers).__name__}")
    for name in headers:
        if not isinstance(name, str):
            raise TypeError(f"outbox header names must be strings, got {name!r}")
    return NewEvent(
        topic=topic,
        key=key,
        payload_json=_encoded(payload, f"payload of event {topic!r}"),
        headers_json=_encoded(dict(headers), f"headers of event {topic!r}"),
    )


# -- topic patterns -------------------------------------------------------


def validate_pattern(pattern: Any) -> str:
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValueError(f"topic pattern must be a non-empty string, got {pattern!r}")
    for word in pattern.split("."):
        if not word:
            raise ValueError(f"topic pattern {pattern!r} has an empty word")
        if _WILDCARDS & set(word) and word not in _WILDCARDS:
            raise ValueError(
                f"topic pattern {pattern!r}: '*' and '#' must stand alone between dots"
            )
    return pattern


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    # Matched against "." + topic: every word then starts with a dot, so "#"
    # (zero or more words) needs no special case at either end.
    parts = []
    for word in pattern.split("."):
        if word == "#":
            parts.append(r"(?:\.[^.]+)*")
        elif word == "*":
            parts.append(r"\.[^.]+")
        else:
            parts.append(r"\." + re.escape(word))
    return re.compile("".join(parts) + r"\Z")


def topic_matches(pattern: str, topic: str) -> bool:
    """True if ``topic`` matches ``pattern`` (``*`` one word, ``#`` any number)."""
    if pattern == topic:
        return True
    if not _WILDCARDS & set(pattern):
        return False
    return _compile(pattern).match("." + topic) is not None
