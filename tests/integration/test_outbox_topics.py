"""Which topics publish() accepts: printable characters of any script, no
whitespace or control characters, at most 255 bytes in UTF-8 (a RabbitMQ
routing key's limit). A refused topic names the character; nothing is written."""

from __future__ import annotations

import pytest

from django_jobs import outbox
from django_jobs.models import OutboxEvent
from django_jobs.outbox.events import topic_matches

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("hook.created\r\nX-Injected: 1", "U+000D (a control character) at position 12"),
        ("hook.created\n", "U+000A (a control character) at position 12"),
        ("hook\tcreated", "U+0009 (a control character) at position 4"),
        ("hook created", "U+0020 (whitespace) at position 4"),
        ("hook.\u00a0x", "U+00A0 (whitespace) at position 5"),
        ("hook.\u200bx", "U+200B (a non-printable character) at position 5"),
        ("hook.\u2028x", "U+2028 (whitespace) at position 5"),
        ("hook.\x7f", "U+007F (a control character) at position 5"),
        ("hook.\x85", "U+0085 (a control character) at position 5"),
        ("заказ." * 22 + "x" * 14, "longer than 255 bytes in UTF-8 (256)"),
    ],
)
def test_bad_topics_are_refused_naming_the_character(topic, message):
    with pytest.raises(ValueError, match="outbox topic") as info:
        outbox.publish(topic, {})
    assert message in str(info.value)
    with pytest.raises(ValueError, match="publish_many item 1"):
        outbox.publish_many([("ok", {}), (topic, {})])
    assert not OutboxEvent.objects.exists()


def test_printable_topics_of_any_script_are_accepted_and_matched():
    for topic in ["hook.заказ", "order.créé", "注文.作成", "a-b_c:d/e", "order.100%"]:
        assert outbox.publish(topic, {}).topic == topic
    assert outbox.publish("заказ." * 22 + "x" * 13, {})  # exactly 255 bytes
    assert topic_matches("hook.*", "hook.заказ")
    assert not topic_matches("hook.*", "hook.заказ.новый")
    assert topic_matches("hook.#", "hook.заказ.новый")
