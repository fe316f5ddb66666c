"""Transactional outbox: ``publish()`` inside a transaction, ``@subscriber`` to react.

::

    from django_jobs import outbox, subscriber

    with transaction.atomic():
        order = Order.objects.create(...)
        outbox.publish("order.created", {"order_id": order.pk}, key=str(order.pk))

    @subscriber("order.*")
    def reserve_stock(event): ...   # event.id, .topic, .key, .payload, .headers

The event commits or rolls back with the surrounding transaction. The relay
(inside ``runworker``, or ``manage.py runrelay``) turns each committed event
into one job per subscriber and per external publisher, exactly once, and
dispatches events of one key in order. Nothing here touches models at import
time.
"""

from __future__ import annotations

from django_jobs.outbox.events import topic_matches
from django_jobs.outbox.publish import publish, publish_many
from django_jobs.outbox.subscribers import subscriber, subscribers_for
from django_jobs.rows import Event

__all__ = ["Event", "publish", "publish_many", "subscriber", "subscribers_for", "topic_matches"]
