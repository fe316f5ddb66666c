"""The JSON rules of every stored or sent value: one encoder, one set of checks.

Arguments, return values, progress, event payloads and headers are stored as
JSON; events are sent to webhooks and RabbitMQ as JSON. All of them use
:func:`encode` (compact, no NaN or Infinity, which JSON does not have), and
everything stored passes the same checks: PostgreSQL refuses NUL characters
and lone surrogates, and ``DJANGO_JOBS["MAX_PAYLOAD_BYTES"]`` caps the size.

Nothing here imports django_jobs: callers pass the size limit in.
"""

from __future__ import annotations

import json
import re
from typing import Any

# One prebuilt encoder: json.dumps() with options builds a new one per call.
encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
loads = json.loads

# An escaped NUL (\u0000) not preceded by an escaping backslash.
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
_NUL = "contains a NUL character (\\x00), which PostgreSQL cannot store"


def from_jsonb(value: Any) -> Any:
    """A jsonb column read by a raw cursor, decoded: Django's psycopg setup returns
    jsonb as text (its JSONField decodes in ``from_db_value``)."""
    return loads(value) if isinstance(value, str | bytes) else value


def dumps(value: Any, what: str) -> str:
    """``value`` as compact JSON, or TypeError naming ``what`` if it is not JSON."""
    try:
        return encode(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serializable: {exc}") from exc


def unstorable_text(text: str) -> str | None:
    """Why PostgreSQL cannot store ``text``, or None.

    A NUL character is refused in text and jsonb; a lone surrogate
    (``"\ud800"``) is not valid Unicode, so it cannot be encoded as UTF-8.
    """
    if "\x00" in text:
        return _NUL
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return (
                f"contains a lone surrogate (\\u{ord(exc.object[exc.start]):04x}), "
                "which is not valid Unicode and cannot be stored"
            )
    return None


def reject_unstorable(encoded: str, what: str) -> str:
    """``encoded`` JSON unchanged, or TypeError if it holds a NUL or a lone surrogate.

    JSON allows ``\u0000`` and ``\ud800``; PostgreSQL's jsonb rejects both, so
    the row (or a whole batch of completions) would fail to write. SQLite
    stores them, and the job fails later instead.
    """
    if "\\u0000" in encoded and _ESCAPED_NUL.search(encoded):
        raise TypeError(f"{what} {_NUL}")
    if "\\ud" in encoded:
        # json.dumps writes a character beyond U+FFFF as a surrogate pair
        # (valid): only a lone one is not. Decoding pairs them up, then UTF-8
        # refuses what is left. Rare, so the slow path is fine.
        reason = unstorable_text(json.dumps(json.loads(encoded), ensure_ascii=False))
        if reason is not None:
            raise TypeError(f"{what} {reason}")
    return encoded


def reject_oversized(size: int, limit: int, subject: str) -> None:
    """ValueError if ``size`` bytes of JSON exceed ``limit`` (0: no limit), the
    value of ``DJANGO_JOBS["MAX_PAYLOAD_BYTES"]``.

    ``subject`` starts the sentence: ``"progress is"``.
    """
    if limit and size > limit:
        raise ValueError(
            f"{subject} {size:,} bytes of JSON, over DJANGO_JOBS['MAX_PAYLOAD_BYTES'] ({limit:,})"
        )


def check_stored(encoded: str, what: str, limit: int) -> str:
    """``encoded`` unchanged if it can be stored: ValueError if it is larger than
    ``limit`` bytes, TypeError if it holds a NUL or a lone surrogate."""
    reject_oversized(len(encoded), limit, f"{what} is")  # ensure_ascii: characters are bytes
    return reject_unstorable(encoded, what)


def encode_payload(value: Any, what: str, limit: int) -> str:
    """JSON for a stored value (progress): TypeError if it is not JSON or
    cannot be stored, ValueError if it is larger than ``limit`` bytes."""
    return check_stored(dumps(value, what), what, limit)


def storable(text: str) -> str:
    """``text`` with NUL characters written out: PostgreSQL stores none in text or
    jsonb, and an error quoting binary data must not make its failure unwritable."""
    return text.replace("\x00", "\\x00") if "\x00" in text else text
