"""Bad input to enqueue() raises at the call, names the problem, and writes nothing.

Each case used to be accepted and fail later: arguments that do not bind ran
(and failed) max_attempts times; a NUL or lone surrogate in a text option was a
raw DataError/UnicodeEncodeError from the driver (or, on SQLite, silently
stored); an overflowing run_after was an OverflowError; 100 MB of arguments
was stored and took the admin seconds to render.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from django.tasks.exceptions import InvalidTask
from django.test import override_settings

from django_jobs import outbox, task
from django_jobs.exceptions import InvalidJobOptions
from django_jobs.models import Job, OutboxEvent
from django_jobs.tasks import registry
from tests.testapp import dtasks, tasks

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = {"MAX_PAYLOAD_BYTES": 100}


def refused(error: type[Exception], *fragments: str) -> Any:
    """pytest.raises(error) whose message holds ``fragments`` in this order."""
    return pytest.raises(error, match=".*".join(map(re.escape, fragments)))


def assert_no_rows() -> None:
    assert Job.objects.count() == 0
    assert OutboxEvent.objects.count() == 0


# -- arguments must bind to the function's signature ---------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "problem"),
    [
        ((1, 2, 3), {}, "too many positional arguments"),
        ((1,), {}, "missing a required argument: 'b'"),
        ((1, 2), {"c": 3}, "got an unexpected keyword argument 'c'"),
        ((1,), {"a": 2, "b": 3}, "multiple values for argument 'a'"),
    ],
)
def test_arguments_that_do_not_bind_raise_type_error_naming_the_task(args, kwargs, problem):
    with refused(TypeError, "tests.testapp.tasks.add", "add(a, b)", problem):
        tasks.add.enqueue(*args, **kwargs)
    with refused(TypeError, "tests.testapp.tasks.add", problem):
        tasks.add.using(queue_name="other").enqueue(*args, **kwargs)
    assert_no_rows()


def test_enqueue_many_names_the_item_that_does_not_bind():
    with refused(TypeError, "tests.testapp.tasks.add", "enqueue_many item 2", "'b'"):
        tasks.add.enqueue_many([(1, 2), {"a": 1, "b": 2}, (1,)])
    assert_no_rows()
    assert len(tasks.add.enqueue_many([(1, 2), {"a": 1, "b": 2}])) == 2


def test_binding_arguments_still_enqueue():
    job = tasks.add.enqueue(1, b=2)
    assert Job.objects.get(pk=job.pk).kwargs == {"b": 2}
    assert tasks.record.enqueue().args == []


def test_django_tasks_arguments_must_bind_too():
    with refused(TypeError, "tests.testapp.dtasks.add", "too many positional arguments"):
        dtasks.add.enqueue(1, 2, 3)
    # A takes_context task binds without its context parameter.
    with refused(TypeError, "fails_then_succeeds", "missing a required argument: 'times'"):
        dtasks.fails_then_succeeds.enqueue()
    assert_no_rows()
    dtasks.fails_then_succeeds.enqueue(1)
    dtasks.echo.enqueue(1, 2, x=3)
    assert Job.objects.count() == 2


# -- NUL and lone surrogates -----------------------------------------------------


@pytest.mark.parametrize("bad", ["a\x00b", "a\ud800b", "\udfff"])
@pytest.mark.parametrize("option", ["queue_name", "idempotency_key"])
def test_nul_or_lone_surrogate_in_a_text_option_names_the_option(option, bad):
    with refused(InvalidJobOptions, option):
        tasks.add.using(**{option: bad}).enqueue(1, 2)
    assert_no_rows()


def plain_function() -> None:
    """Decorated in a test (a module-level function: @task refuses nested ones)."""


def test_lone_surrogate_in_a_task_queue_name_fails_at_definition():
    with refused(InvalidJobOptions, "queue_name", "lone surrogate"):
        task(queue_name="q\ud800")(plain_function)
    assert f"{__name__}.plain_function" not in registry


@pytest.mark.parametrize(
    ("call", "where"),
    [
        (lambda: tasks.record.enqueue("a\ud800"), "positional argument 0"),
        (lambda: tasks.record.enqueue(tag=["ok", "\udc00"]), "keyword argument 'tag'"),
        (lambda: tasks.record.enqueue({"k\udbff": 1}), "positional argument 0"),
        (lambda: tasks.record.enqueue_many([("ok",), ("\ud83d",)]), "enqueue_many item 1"),
        (lambda: dtasks.echo.enqueue(x="\ud800"), "keyword argument 'x'"),
    ],
)
def test_lone_surrogate_in_arguments_is_refused_on_every_database(call, where):
    # PostgreSQL's jsonb rejects the "\ud800" escape; SQLite would store it and
    # the job would fail later, when the worker decodes it.
    with refused(TypeError, where, "lone surrogate", "\\ud"):
        call()
    assert_no_rows()


def test_characters_outside_the_bmp_are_stored_and_read_back():
    # json.dumps writes "\ud83d\ude00" for one emoji: a valid surrogate *pair*.
    job = tasks.record.enqueue("party \U0001f389 time \U0001f600")
    assert Job.objects.get(pk=job.pk).args == ["party \U0001f389 time \U0001f600"]
    # Escaped backslashes before "ud800" are ordinary text, not an escape.
    job = tasks.record.enqueue("\\ud800")
    assert Job.objects.get(pk=job.pk).args == ["\\ud800"]


def test_enqueue_many_suffixed_idempotency_key_must_fit():
    with refused(InvalidJobOptions, "idempotency_key", "255"):
        tasks.record.using(idempotency_key="k" * 254).enqueue_many([("a",), ("b",)])
    assert_no_rows()
    tasks.record.using(idempotency_key="k" * 253).enqueue_many([("a",), ("b",)])
    assert Job.objects.count() == 2


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: outbox.publish("t", {"raw": "a\ud800"}), TypeError, "payload of event 't'"),
        (lambda: outbox.publish("t", {}, headers={"h": "\udc00"}), TypeError, "headers of event"),
        (lambda: outbox.publish("t\ud800", {}), ValueError, "outbox topic"),
        (lambda: outbox.publish("t", {}, key="k\udfff"), ValueError, "outbox key"),
    ],
)
def test_outbox_refuses_lone_surrogates(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value) and "lone surrogate" in str(info.value)
    assert_no_rows()
    outbox.publish("t", {"emoji": "\U0001f600"}, key="\U0001f511")
    assert OutboxEvent.objects.get().payload == {"emoji": "\U0001f600"}


# -- run_after ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "run_after",
    [
        timedelta.max,
        timedelta.min,
        timedelta(days=3_000_000),
        datetime.max.replace(tzinfo=timezone(timedelta(hours=-5))),
        datetime.min.replace(tzinfo=timezone(timedelta(hours=5))),
    ],
)
def test_run_after_out_of_range_names_run_after(run_after):
    with refused(InvalidJobOptions, "run_after"):
        tasks.add.using(run_after=run_after).enqueue(1, 2)
    assert_no_rows()


def test_run_after_far_but_storable_is_accepted():
    job = tasks.add.using(run_after=datetime(9999, 12, 30, tzinfo=UTC)).enqueue(1, 2)
    assert Job.objects.get(pk=job.pk).run_after.year == 9999
    job = tasks.add.using(run_after=timedelta(days=365 * 1000)).enqueue(1, 2)
    assert Job.objects.get(pk=job.pk).run_after.year > 3000


def test_django_tasks_refuse_out_of_range_run_after_and_unstorable_keys():
    far = datetime.max.replace(tzinfo=timezone(timedelta(hours=-5)))
    with refused(InvalidTask, "tests.testapp.dtasks.add", "run_after", "out of range"):
        dtasks.add.using(run_after=far)
    with refused(InvalidTask, "tests.testapp.dtasks.add", "idempotency_key", "NUL"):
        dtasks.add.using(idempotency_key="k\x00")
    with refused(InvalidTask, "idempotency_key", "lone surrogate"):
        dtasks.add.using(idempotency_key="k\ud800")
    assert_no_rows()


# -- MAX_PAYLOAD_BYTES -------------------------------------------------------------


def test_default_limit_refuses_over_one_mib_of_arguments():
    big = "x" * (1024 * 1024)
    with refused(ValueError, "tests.testapp.tasks.record", "MAX_PAYLOAD_BYTES", "1,048,576"):
        tasks.record.enqueue(big)
    assert_no_rows()


@override_settings(DJANGO_JOBS=LIMIT)
def test_the_limit_counts_args_and_kwargs_together_and_names_the_size():
    # As stored: ["aaa..."] is len + 4 characters of JSON, and kwargs {} two more.
    tasks.record.enqueue("a" * 94)  # exactly 100 bytes
    with refused(ValueError, "arguments are 101 bytes of JSON", "MAX_PAYLOAD_BYTES", "(100)"):
        tasks.record.enqueue("a" * 95)
    with refused(ValueError, "MAX_PAYLOAD_BYTES"):
        tasks.add.enqueue("a" * 60, b="b" * 60)
    with refused(ValueError, "enqueue_many item 1", "MAX_PAYLOAD_BYTES"):
        tasks.record.enqueue_many([("ok",), ("a" * 200,)])
    with refused(ValueError, "tests.testapp.dtasks.echo", "MAX_PAYLOAD_BYTES"):
        dtasks.echo.enqueue("a" * 200)
    assert Job.objects.count() == 1


@pytest.mark.parametrize("off", [None, 0])
def test_the_limit_can_be_turned_off(off):
    with override_settings(DJANGO_JOBS={"MAX_PAYLOAD_BYTES": off}):
        job = tasks.record.enqueue("x" * (2 * 1024 * 1024))
    assert len(Job.objects.get(pk=job.pk).args[0]) == 2 * 1024 * 1024
