"""The pure checks behind enqueue(): argument binding (JSON rules: test_codec.py)."""

from __future__ import annotations

from typing import Any

import pytest

from django_jobs.tasks import _binding_shapes, check_binding


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
