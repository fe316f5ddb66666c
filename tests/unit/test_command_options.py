"""The bounds of the commands' numeric options, edges included (the refusals run for
real in tests/e2e/test_runworker_options.py)."""

from __future__ import annotations

import argparse

import pytest

from django_jobs.management.commands import runrelay, runworker


@pytest.mark.parametrize(
    ("dest", "text", "value"),
    [
        ("concurrency", "1", 1),
        ("concurrency", "1000", 1000),
        ("prefetch", "0", 0),  # documented: 0 turns prefetch off
        ("shutdown_timeout", "0", 0.0),  # hand everything back at once
        ("poll_interval", "0.05", 0.05),
        ("max_memory_per_child", "512.5", 512.5),
        ("max_jobs", "1000000000", 1_000_000_000),
    ],
)
def test_accepted_edges(dest, text, value):
    assert runworker.NUMBERS[dest](text) == value


@pytest.mark.parametrize(
    ("dest", "value", "message"),
    [
        ("concurrency", "1001", "must be between 1 and 1000, got 1001"),
        ("concurrency", "2.5", "must be an integer, got '2.5'"),
        ("concurrency", 2.5, "must be an integer, got 2.5"),
        ("poll_interval", "0", "must be more than 0 and at most 86400, got 0"),
        ("poll_interval", "-inf", "must be a finite number, got -inf"),
        ("max_memory_per_child", "0", "must be a positive number of MiB, got 0"),
        ("shutdown_timeout", "86401", "must be between 0 and 86400, got 86401"),
    ],
)
def test_refused_with_the_bounds(dest, value, message):
    with pytest.raises(argparse.ArgumentTypeError) as excinfo:
        runworker.NUMBERS[dest](value)
    assert str(excinfo.value) == message


def test_runrelay_uses_the_same_bounds():
    assert runrelay.NUMBERS["batch_size"]("10000") == 10000
    with pytest.raises(argparse.ArgumentTypeError, match="between 1 and 10000"):
        runrelay.NUMBERS["batch_size"]("10001")
