"""Putting an exception into words never raises, whatever its __str__ does (no database)."""

from __future__ import annotations

import traceback

import pytest

from django_jobs.exceptions import describe_exception, exception_message, format_traceback


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("broken __str__")


class BadStrAndRepr(BadStr):
    def __repr__(self) -> str:
        raise RuntimeError("broken __repr__")


class ReprNotAString(BadStr):
    def __repr__(self) -> str:
        return 42  # type: ignore[return-value]


class UnreadableNotes(list[str]):
    """``__notes__`` whose iteration raises: traceback.format_exception raises on it."""

    def __iter__(self):  # type: ignore[no-untyped-def]
        raise RuntimeError("notes cannot be read")


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


@pytest.mark.parametrize(
    ("exc", "message", "description"),
    [
        (ValueError("plain"), "plain", "ValueError: plain"),
        (ValueError(), "", "ValueError"),
        (KeyError("k"), "'k'", "KeyError: 'k'"),
        (
            BadStr("the real message"),
            "BadStr('the real message') (str() raised RuntimeError)",
            "BadStr: BadStr('the real message') (str() raised RuntimeError)",
        ),
        (
            BadStrAndRepr("x"),
            "<unprintable BadStrAndRepr> (str() raised RuntimeError)",
            "BadStrAndRepr: <unprintable BadStrAndRepr> (str() raised RuntimeError)",
        ),
        (
            ReprNotAString("x"),
            "<unprintable ReprNotAString> (str() raised RuntimeError)",
            "ReprNotAString: <unprintable ReprNotAString> (str() raised RuntimeError)",
        ),
    ],
)
def test_message_and_description(exc, message, description):
    assert exception_message(exc) == message
    assert describe_exception(exc) == description


def test_a_traceback_of_an_unprintable_exception_still_shows_the_stack():
    text = format_traceback(raised(BadStrAndRepr("x")))
    assert text.startswith("Traceback (most recent call last):")
    assert "in raised" in text and "BadStrAndRepr" in text


def test_a_traceback_that_traceback_itself_cannot_format_falls_back_to_stack_and_description():
    exc = raised(BadStr("the real message"))
    exc.__notes__ = UnreadableNotes(["a note"])
    with pytest.raises(RuntimeError, match="notes cannot be read"):
        traceback.format_exception(exc)  # what the fallback is for
    text = format_traceback(exc)
    assert text.startswith("Traceback (most recent call last):\n")
    assert "in raised" in text
    assert text.endswith("BadStr: BadStr('the real message') (str() raised RuntimeError)\n"), text


def test_an_exception_never_raised_has_no_stack_but_a_description():
    exc = BadStr("never raised")
    exc.__notes__ = UnreadableNotes()
    assert format_traceback(exc) == "BadStr: BadStr('never raised') (str() raised RuntimeError)\n"
