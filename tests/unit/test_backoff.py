import random

import pytest

from django_jobs.backoff import compute_delay, nominal_delay


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("fixed", [2, 2, 2, 2, 2]),
        ("linear", [2, 4, 6, 8, 10]),
        ("fibonacci", [2, 2, 4, 6, 10]),
        ("exponential", [2, 4, 8, 16, 32]),
    ],
)
def test_nominal_delays(strategy, expected):
    assert [nominal_delay(strategy, n, 2.0, 1000.0) for n in range(1, 6)] == expected


def test_cap_applies_to_every_strategy():
    for strategy in ("fixed", "linear", "fibonacci", "exponential"):
        assert nominal_delay(strategy, 500, 2.0, 60.0) <= 60.0


def test_exponential_jitter_stays_within_half_and_full_delay():
    rng = random.Random(7)
    for attempt in range(1, 12):
        nominal = nominal_delay("exponential", attempt, 1.0, 300.0)
        samples = [
            compute_delay("exponential", attempt, base=1.0, cap=300.0, rng=rng) for _ in range(200)
        ]
        assert min(samples) >= nominal / 2
        assert max(samples) <= nominal
        # Jitter really spreads retries: not all the same value.
        assert len({round(s, 6) for s in samples}) > 100


def test_callable_backoff_is_capped_and_never_negative():
    assert compute_delay(lambda n: n * 10.0, 3, base=1, cap=25) == 25
    assert compute_delay(lambda n: -5.0, 3, base=1, cap=25) == 0.0
