"""DJANGO_JOBS["ALERTS"] parsing: defaults, and one clear problem per bad rule."""

from __future__ import annotations

import pytest

from django_jobs.alerts.rules import DEFAULT_MIN_JOBS, Rule, parse_rules


def one_rule(spec: dict) -> Rule:
    rules, problems = parse_rules({"r": spec})
    assert problems == []
    return rules[0]


def one_problem(spec: object, name: object = "r") -> tuple[str, str]:
    rules, problems = parse_rules({name: spec})
    assert rules == [] and len(problems) == 1
    return problems[0].id, problems[0].message


def test_failure_rate_with_defaults():
    rule = one_rule({"kind": "failure_rate", "queue": "payments", "threshold": 0.2})
    assert rule == Rule(
        name="r", kind="failure_rate", threshold=0.2, window=300.0, queue="payments"
    )
    assert rule.min_jobs == DEFAULT_MIN_JOBS and rule.severity == "warning"
    assert rule.describe() == "failure rate in queue payments over 300s"
    assert rule.format_value(0.25) == "25%"


def test_every_kind_parses_with_its_own_keys():
    rules, problems = parse_rules(
        {
            "rate": {"kind": "failure_rate", "task": "a.b", "threshold": 0.5, "window": 60,
                     "min_jobs": 3, "for": 30, "severity": "critical"},
            "age": {"kind": "oldest_ready_age", "queue": "q", "threshold": 120},
            "dead": {"kind": "dead_letters", "window": 3600},
            "workers": {"kind": "stale_workers"},
            "outbox": {"kind": "outbox_pending_age", "threshold": 60},
        }
    )  # fmt: skip
    assert problems == []
    by_name = {r.name: r for r in rules}
    assert by_name["rate"].for_seconds == 30 and by_name["rate"].min_jobs == 3
    assert by_name["rate"].severity == "critical" and by_name["rate"].task == "a.b"
    assert (by_name["dead"].threshold, by_name["dead"].window) == (1.0, 3600.0)
    assert by_name["workers"].threshold == 1.0 and by_name["workers"].window is None
    assert by_name["age"].format_value(61.4) == "61s"


@pytest.mark.parametrize(
    ("spec", "check_id", "words"),
    [
        ({"kind": "failure_rat", "threshold": 0.2}, "E302", "unknown kind 'failure_rat'"),
        ({"threshold": 0.2}, "E302", "unknown kind None"),
        ({"kind": "stale_workers", "treshold": 2}, "E303", "unknown key(s) 'treshold'"),
        ({"kind": "outbox_pending_age", "threshold": 1, "queue": "q"}, "E303", "'queue'"),
        ({"kind": "failure_rate", "threshold": 0}, "E304", "more than 0"),
        ({"kind": "oldest_ready_age", "threshold": -5}, "E304", "more than 0"),
        ({"kind": "failure_rate", "threshold": 20}, "E304", "at most 1"),
        ({"kind": "failure_rate"}, "E304", "'threshold' is required"),
        ({"kind": "oldest_ready_age", "threshold": "60"}, "E304", "must be a number"),
        ({"kind": "stale_workers", "threshold": True}, "E304", "must be a number"),
        ({"kind": "failure_rate", "threshold": 0.1, "window": 0}, "E305", "'window' must be"),
        ({"kind": "dead_letters", "window": -1}, "E305", "'window' must be"),
        ({"kind": "dead_letters", "for": -1}, "E305", "'for' must be"),
        ({"kind": "failure_rate", "threshold": 0.1, "min_jobs": 0}, "E305", "'min_jobs'"),
        ({"kind": "failure_rate", "threshold": 0.1, "min_jobs": 2.5}, "E305", "integer"),
        ({"kind": "failure_rate", "threshold": 0.1, "task": ""}, "E306", "'task' must be"),
        ({"kind": "dead_letters", "queue": ["a"]}, "E306", "'queue' must be"),
        ({"kind": "dead_letters", "queue": "q" * 101}, "E306", "at most 100"),
        ("failure_rate", "E301", "must be a dict"),
    ],
)
def test_a_bad_rule_is_one_problem_naming_it(spec, check_id, words):
    found_id, message = one_problem(spec, name="payments-failing")
    assert found_id == f"django_jobs.{check_id}"
    assert message.startswith("DJANGO_JOBS['ALERTS']['payments-failing']: ")
    assert words in message


def test_bad_rules_do_not_hide_good_ones():
    rules, problems = parse_rules(
        {"good": {"kind": "stale_workers"}, "bad": {"kind": "nope"}, "": {"kind": "stale_workers"}}
    )
    assert [r.name for r in rules] == ["good"]
    assert [p.id for p in problems] == ["django_jobs.E302", "django_jobs.E301"]


def test_alerts_must_be_a_dict():
    rules, problems = parse_rules([{"kind": "stale_workers"}])
    assert rules == [] and problems[0].id == "django_jobs.E301"
    assert "must be a dict of rule name -> rule, got list" in problems[0].message
    assert parse_rules(None) == ([], []) and parse_rules({}) == ([], [])
