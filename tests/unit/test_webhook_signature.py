"""verify_signature: True only for a well-formed, fresh, matching header;
False (never an exception) for anything malformed. Webhook options that
would fail every delivery are configuration errors, shown without secrets."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_jobs.outbox.publishers import webhook
from django_jobs.outbox.publishers.webhook import WebhookPublisher, sign, verify_signature

SECRET = "whsec-test"
BODY = b'{"id":1}'
NOW = 1_700_000_000
GOOD = sign(SECRET, NOW, BODY)
DIGEST = GOOD.split("v1=", 1)[1]
ARABIC_INDIC = "\u0661\u0667" + "\u0660" * 8  # 1700000000


def test_a_fresh_matching_signature_verifies():
    assert verify_signature(SECRET, BODY, GOOD, now=NOW)
    assert verify_signature(SECRET, BODY, GOOD, now=NOW + 300)
    assert not verify_signature(SECRET, BODY, GOOD, now=NOW + 301)
    assert not verify_signature(SECRET, BODY + b" ", GOOD, now=NOW)
    assert not verify_signature("other", BODY, GOOD, now=NOW)


@pytest.mark.parametrize(
    "header",
    [
        "",
        ",",
        "=",
        "t=,v1=",
        f"t={NOW}",
        f"v1={DIGEST}",
        f"t={NOW},v1=é",
        f"t={NOW},v1={DIGEST[:-1]}é",
        f"t={NOW},v1={DIGEST[:-2]}",
        f"t={NOW},v1={DIGEST}00",
        f"t={NOW},v1={DIGEST.upper()}x",
        f"t={NOW},v1=\x00{DIGEST[1:]}",
        f"t={ARABIC_INDIC},v1={DIGEST}",  # int() accepts these digits
        f"t=+{NOW},v1={DIGEST}",
        f"t= {NOW},v1={DIGEST}",
        f"t={NOW:_},v1={DIGEST}",
        f"t={NOW}.5,v1={DIGEST}",
        f"t=-{NOW},v1={DIGEST}",
        f"t={'9' * 400},v1={DIGEST}",
        f"t={NOW},v1={DIGEST},t={NOW + 1}",
        f"t={NOW},t={NOW},v1={DIGEST}",
        f"t={NOW};v1={DIGEST}",
        f"t={NOW},v1={DIGEST},",
        f"t={NOW},,v1={DIGEST}",
        f"t={NOW},v1",
        f"x={NOW},v1={DIGEST}",
        f"T={NOW},V1={DIGEST}",
        f" t={NOW}, v1={DIGEST}",
        f"t={NOW}\r\n,v1={DIGEST}",
    ],
)
def test_malformed_headers_are_false_not_errors(header):
    assert verify_signature(SECRET, BODY, header, now=NOW) is False


@pytest.mark.parametrize("header", [None, b"t=1,v1=00", 12, ["t=1"]])
def test_headers_that_are_not_text_are_false(header):
    assert verify_signature(SECRET, BODY, header, now=NOW) is False


def test_urls_lose_their_credentials_in_messages():
    text = (
        "POST https://user:s3cret@hooks.example.com/in failed; "
        "retry http://a%40b:p@ss@h:8080/x?u=v@w and ftp://plain.example/ok"
    )
    redacted = webhook.redact_url(text)
    assert "s3cret" not in redacted and "ss@h" not in redacted and "a%40b" not in redacted
    assert "https://***@hooks.example.com/in" in redacted
    assert "http://***@h:8080/x?u=v@w" in redacted
    assert "ftp://plain.example/ok" in redacted


HOOK = {"BACKEND": "webhook", "SECRET": SECRET, "URL": "https://hooks.example.com/in"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"URL": "ftp://hookuser:s3cret@host/"}, "URL must be an http:// or https:// URL"),
        ({"URL": "https://hookuser:s3cret@host:abc/"}, "URL 'https://***@host:abc/' is invalid"),
        ({"HEADERS": {"X-Token": "s3cret\r\nX-Evil: 1"}}, "HEADERS['X-Token'] must be printable"),
        ({"HEADERS": {"X-Token": "s3cret-é"}}, "HEADERS['X-Token'] must be printable ASCII"),
        ({"HEADERS": {"X Token": "v"}}, "'X Token' is not a valid HTTP header name"),
    ],
)
def test_options_that_would_fail_every_delivery_are_refused(options, message):
    with pytest.raises(ImproperlyConfigured) as info:
        WebhookPublisher("hook", {**HOOK, **options})
    assert message in str(info.value)
    assert "s3cret" not in str(info.value)


def test_url_credentials_become_basic_auth():
    publisher = WebhookPublisher("hook", {**HOOK, "URL": "https://us%40er:p%2Fw@host/in?x=1"})
    assert publisher.url == "https://host/in?x=1"
    assert publisher.auth is not None
    assert publisher.auth._auth_header == "Basic dXNAZXI6cC93"  # "us@er:p/w"
    assert WebhookPublisher("hook", HOOK).auth is None
