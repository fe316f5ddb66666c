"""A RabbitMQ publisher's configuration error never shows the URL's password."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_jobs.outbox.publishers.rabbitmq import RabbitMQPublisher


@pytest.mark.parametrize(
    "url",
    ["amqp://billing:s3cret-pw@rabbit:notaport/%2F", "amqp://billing:s3cret-pw@rabbit:99999999/"],
)
def test_bad_amqp_url_error_hides_the_password(url):
    with pytest.raises(ImproperlyConfigured) as caught:
        RabbitMQPublisher("events", {"BACKEND": "rabbitmq", "URL": url})
    message = str(caught.value)
    assert "not an AMQP URL" in message
    assert "s3cret-pw" not in message
    assert "amqp://***@rabbit" in message
