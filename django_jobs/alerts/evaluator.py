"""The alert state machine: ok <-> firing, one transition per rule cluster-wide.

Per rule, :func:`evaluate` runs in ONE transaction on the rule's AlertState
row:

1. ``SELECT ... FOR UPDATE SKIP LOCKED`` the row: a worker evaluating the same
   rule right now holds it, so this one skips (it would reach the same verdict);
   on SQLite the transaction is IMMEDIATE, which serialises it the same way;
2. a rule evaluated less than ``min_interval`` seconds ago is skipped (N
   workers share one evaluation per interval);
3. the value is measured inside the lock, so evaluations are ordered: none
   acts on a reading older than the previous one's;
4. a transition is a compare-and-set (``UPDATE ... WHERE status = <read>``)
   plus one AlertEvent; the message goes out ``on_commit``.

::

    ok ──value >= threshold (for "for" seconds)──> firing   (event "fired", 1 message)
    firing ──value < threshold, or no data──> ok            (event "resolved", 1 message)
"""

from __future__ import annotations

import enum
import functools
import logging
from datetime import datetime

from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from django_jobs.alerts import notify
from django_jobs.alerts.measures import Measurement, measure
from django_jobs.alerts.rules import Rule
from django_jobs.models import AlertEvent, AlertState

logger = logging.getLogger("django_jobs.alerts")


class Outcome(enum.Enum):
    BUSY = "busy"  # another worker holds the rule's row: it evaluates
    NOT_DUE = "not due"  # evaluated less than min_interval ago
    UNCHANGED = "unchanged"  # evaluated, no transition
    FIRED = "fired"
    RESOLVED = "resolved"


def _recently(last: datetime | None, now: datetime, min_interval: float) -> bool:
    return last is not None and bool(min_interval) and (now - last).total_seconds() < min_interval


def ensure_state(rule: Rule, alias: str, now: datetime, min_interval: float) -> bool:
    """Whether the rule is due; creates its row if missing (unique on rule: one row).

    A plain read first, so that a rule another worker just evaluated costs one
    SELECT and no lock (SQLite's IMMEDIATE transaction takes the write lock).
    """
    states = AlertState.objects.using(alias)
    last = list(states.filter(rule=rule.name).values_list("last_evaluated_at", flat=True))
    if not last:
        states.bulk_create([AlertState(rule=rule.name, kind=rule.kind)], ignore_conflicts=True)
        return True
    return not _recently(last[0], now, min_interval)


def message_for(rule: Rule, kind: str | None, m: Measurement) -> str:
    value, threshold = rule.format_value(m.value), rule.format_value(rule.threshold)
    what = f"{rule.name}: {rule.describe()} is {value}"
    if kind == AlertEvent.Kind.RESOLVED:
        return f"{what}, below {threshold} again ({m.detail})"
    if m.value is not None and m.value >= rule.threshold:
        return f"{what}, at or above {threshold} ({m.detail})"
    return f"{what}, below {threshold} ({m.detail})"


def evaluate(
    rule: Rule, alias: str = "default", *, min_interval: float = 0.0, now: datetime | None = None
) -> Outcome:
    """Evaluate ``rule`` once; at most one transition (see the module docstring)."""
    if not ensure_state(rule, alias, now or timezone.now(), min_interval):
        return Outcome.NOT_DUE
    states = AlertState.objects.using(alias)
    with transaction.atomic(using=alias):
        # Row lock for the whole evaluation; SKIP LOCKED: never queue behind a
        # worker already evaluating this rule (no-op on SQLite, see above).
        state = states.select_for_update(skip_locked=True).filter(rule=rule.name).first()
        if state is None:
            return Outcome.BUSY
        now = now or timezone.now()  # after the lock: SQLite may have waited for it
        if _recently(state.last_evaluated_at, now, min_interval):
            return Outcome.NOT_DUE  # evaluated by another worker since the read above
        m = measure(rule, alias, now)
        breached = m.value is not None and m.value >= rule.threshold
        breached_since = (state.breached_since or now) if breached else None
        kind: str | None = None
        status = state.status
        if state.status == AlertState.Status.OK and breached:
            assert breached_since is not None
            if (now - breached_since).total_seconds() >= rule.for_seconds:
                kind, status = AlertEvent.Kind.FIRED, AlertState.Status.FIRING
        elif state.status == AlertState.Status.FIRING and not breached:
            kind, status = AlertEvent.Kind.RESOLVED, AlertState.Status.OK
        message = message_for(rule, kind, m)
        changes = {
            "kind": rule.kind,
            "value": m.value,
            "message": message,
            "breached_since": breached_since,
            "last_evaluated_at": now,
        }
        if kind is not None:
            changes.update(status=status, since=now)
        # Compare-and-set on the status read under the lock: 0 rows means the
        # row changed under us (impossible while locked; a guard for databases
        # without row locks) and nothing is recorded or sent.
        if not states.filter(pk=state.pk, status=state.status).update(**changes):
            logger.info("alert %s changed during evaluation; skipped", rule.name)
            return Outcome.BUSY
        if kind is None:
            return Outcome.UNCHANGED
        event = AlertEvent.objects.using(alias).create(
            rule=rule.name,
            kind=kind,
            value=m.value,
            threshold=rule.threshold,
            message=message,
            at=now,  # the same instant as AlertState.since
        )
        transaction.on_commit(functools.partial(notify.send, rule, event), using=alias)
    return Outcome.FIRED if kind == AlertEvent.Kind.FIRED else Outcome.RESOLVED


def evaluate_all(
    rules: list[Rule], alias: str = "default", *, min_interval: float = 0.0
) -> dict[str, Outcome]:
    """Evaluate each rule (one transaction each); a failing rule does not stop the others."""
    outcomes: dict[str, Outcome] = {}
    for rule in rules:
        try:
            outcomes[rule.name] = evaluate(rule, alias, min_interval=min_interval)
        except DatabaseError:
            logger.warning("alert %s: evaluation failed", rule.name, exc_info=True)
            if not connections[alias].in_atomic_block:
                connections[alias].close()  # a broken connection: the next rule reconnects
        except Exception:
            logger.warning("alert %s: evaluation failed", rule.name, exc_info=True)
    return outcomes
