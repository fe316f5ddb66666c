"""Tell people: the ``alert`` signal and ``mail_admins``, once per transition.

Called from ``transaction.on_commit`` by the evaluator: a transition that
rolled back sends nothing. Delivery is at most once (a worker killed between
the commit and the send loses that message; the AlertEvent row stays).
"""

from __future__ import annotations

import logging
import socket

from django.core.mail import mail_admins

from django_jobs import signals
from django_jobs.alerts.rules import Rule
from django_jobs.conf import jobs_settings
from django_jobs.models import AlertEvent

logger = logging.getLogger("django_jobs.alerts")


def subject(rule: Rule, event: AlertEvent) -> str:
    state = "FIRING" if event.kind == AlertEvent.Kind.FIRED else "RESOLVED"
    return f"[{state}] {rule.name} ({rule.severity})"


def body(rule: Rule, event: AlertEvent) -> str:
    return "\n".join(
        [
            event.message,
            "",
            f"rule:      {rule.name} ({rule.kind})",
            f"value:     {rule.format_value(event.value)}",
            f"threshold: {rule.format_value(rule.threshold)}",
            f"severity:  {rule.severity}",
            f"at:        {event.at:%Y-%m-%d %H:%M:%S %Z}",
            f"sent by:   {socket.gethostname()}",
        ]
    )


def send(rule: Rule, event: AlertEvent) -> None:
    """The signal, then (ALERT_MAIL_ADMINS) one email; never raises."""
    state = "firing" if event.kind == AlertEvent.Kind.FIRED else "resolved"
    log = logger.warning if state == "firing" else logger.info
    log("alert %s: %s", state, event.message, extra={"alert_rule": rule.name})
    for receiver, result in signals.alert.send_robust(
        sender=None, rule=rule, state=state, value=event.value, message=event.message, event=event
    ):
        if isinstance(result, Exception):
            logger.warning(
                "alert receiver %r raised", receiver, exc_info=(type(result), result, None)
            )
    if jobs_settings.ALERT_MAIL_ADMINS:
        try:
            mail_admins(subject(rule, event), body(rule, event))
        except Exception:
            logger.warning("alert %s: mail_admins failed", rule.name, exc_info=True)
