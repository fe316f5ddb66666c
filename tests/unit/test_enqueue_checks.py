"""The pure checks behind enqueue(): storable text and JSON, argument binding."""

from __future__ import annotations

import json
from typing import Any

import pytest

from django_jobs.tasks import (
    _binding_shapes,
    check_binding,
    reject_unstorable,
    unstorable_text,
)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("plain", None),
        ("caf\u00e9 \U0001f600", None),
        ("a\x00", "NUL character"),
        ("a\ud800", "lone surrogate (\\ud800)"),
        ("\udc00b", "lone surrogate (\\udc00)"),
        ("\ud83d\ude00", "lone surrogate"),  # a pair as two code points is still invalid text
    ],
)
def test_unstorable_text(text, reason):
    found = unstorable_text(text)
    assert found is None if reason is None else reason in found


@pytest.mark.parametrize(
    "value",
    ["\U0001f600", ["\\ud800"], {"k\U0001f511": "\\\\ud800"}, "\\u0000", "\ud7ff\ue000"],
)
def test_storable_json_passes_unchanged(value):
    encoded = json.dumps(value)
    assert reject_unstorable(encoded, "it") is encoded


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("\ud800", "it contains a lone surrogate (\\ud800)"),
        ({"\udfff": 1}, "it contains a lone surrogate (\\udfff)"),
        (["\ude00\ud83d"], "it contains a lone surrogate"),  # low before high: no pair
        ("\\\ud800", "it contains a lone surrogate"),  # a backslash, then a surrogate
        (["a\x00"], "it contains a NUL character"),
    ],
)
def test_unstorable_json_is_a_type_error(value, reason):
    with pytest.raises(TypeError) as info:
        reject_unstorable(json.dumps(value), "it")
    assert reason in str(info.value)


def positional_only(a: int, /, b: int = 0, *, c: int = 0) -> None: ...


def variadic(*args: Any, **kwargs: Any) -> None: ...


@pytest.mark.parametrize(
    ("args", "kwargs", "problem"),
    [
        ((), {"a": 1}, "'a' parameter is positional only"),
        ((1, 2, 3), {}, "too many positional arguments"),
        ((1,), {"d": 1}, "unexpected keyword argument 'd'"),
    ],
)
def test_check_binding_refuses_what_would_not_bind(args, kwargs, problem):
    with pytest.raises(TypeError, match=problem) as info:
        check_binding("where", positional_only, args, kwargs)
    assert "where: the arguments do not match positional_only(a, /, b=0, *, c=0)" in str(info.value)


def test_a_cached_shape_does_not_let_another_shape_through():
    check_binding("where", positional_only, (1,), {"c": 2})
    check_binding("where", positional_only, (1,), {"c": 3})  # same shape: from the cache
    with pytest.raises(TypeError, match="unexpected keyword argument 'd'"):
        check_binding("where", positional_only, (1,), {"d": 2})
    with pytest.raises(TypeError):
        check_binding("where", positional_only, (), {"c": 2})
    assert (1, "c") in _binding_shapes[positional_only]


def test_shapes_are_capped_for_functions_taking_any_keywords():
    for index in range(200):
        check_binding("where", variadic, (), {f"k{index}": index})
    assert len(_binding_shapes[variadic]) == 64
