"""The alert evaluator inside ``runworker``: a thread with its own connection.

Every ALERT_INTERVAL (jittered) it evaluates each rule; a rule another worker
evaluated less than 3/4 of an interval ago is skipped, so N workers cost about
one evaluation per rule and interval, and the row lock makes each transition
happen once (:mod:`django_jobs.alerts.evaluator`).
"""

from __future__ import annotations

import logging
import random
import threading

from django.db import connections

from django_jobs.alerts.evaluator import evaluate_all
from django_jobs.alerts.rules import Rule, load_rules
from django_jobs.conf import jobs_settings

logger = logging.getLogger("django_jobs.alerts")

# A rule evaluated by any worker less than this fraction of ALERT_INTERVAL ago
# is not due: jitter makes workers wake at different times, and the first one
# after the interval does the work.
DUE_FRACTION = 0.75


class AlertService(threading.Thread):
    """A worker service (start/stop) that evaluates the ALERTS rules."""

    def __init__(self, database: str, interval: float, rules: list[Rule]) -> None:
        super().__init__(name="django_jobs-alerts", daemon=True)
        self.database = database
        self.interval = interval
        self.rules = rules
        self._stop_event = threading.Event()

    @classmethod
    def from_settings(cls, database: str) -> AlertService | None:
        """A service, or None without rules or with ALERT_INTERVAL None."""
        rules, _ = load_rules()  # invalid rules stopped the start (system checks)
        interval = jobs_settings.ALERT_INTERVAL
        if not rules or not interval:
            return None
        return cls(database, float(interval), rules)

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(30)

    def run(self) -> None:
        logger.info("alerts: evaluating %d rule(s) every %gs", len(self.rules), self.interval)
        wait = random.uniform(0, self.interval)  # workers started together do not align
        try:
            while not self._stop_event.wait(wait):
                wait = self.interval * random.uniform(0.8, 1.2)
                try:
                    evaluate_all(
                        self.rules, self.database, min_interval=self.interval * DUE_FRACTION
                    )
                except Exception:
                    logger.warning("alert evaluation failed", exc_info=True)
                    connections[self.database].close()
        finally:
            connections.close_all()
