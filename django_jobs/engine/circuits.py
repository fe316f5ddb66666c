"""Circuit breakers in the claim and in the outcome writes, through the ORM
(both databases): mixed into ``GenericEngine``.

A circuit's row is locked for every change: ``fail_job`` and a probe's
success lock it (waiting: a failure must be counted); the gated claim locks
it with ``SKIP LOCKED`` (a circuit being changed right now lets nothing
through this claim, it is decided on the next). So "exactly one probe
cluster-wide" holds: the claim that turns an OPEN circuit HALF_OPEN records
its probe job in the same transaction, and any other claimer sees HALF_OPEN
with a RUNNING probe (or waits for the lock, skipping) and starts nothing.
Times are the flow clock (the database's on PostgreSQL), in epoch seconds.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from django_jobs import signals
from django_jobs.conf import jobs_settings
from django_jobs.models import Circuit, CircuitEvent, FlowLane, Job
from django_jobs.status import CircuitState, JobStatus
from django_jobs.tasks import find_task

logger = logging.getLogger("django_jobs.circuits")


def circuit_config(name: str) -> dict[str, float]:
    config = (jobs_settings.CIRCUITS or {}).get(name) or {}
    return {
        "FAILURES": float(config.get("FAILURES", 5)),
        "WINDOW": float(config.get("WINDOW", 60)),
        "COOLDOWN": float(config.get("COOLDOWN", 30)),
    }


def circuit_of(task_name: str) -> str | None:
    task = find_task(task_name)
    return task.circuit if task is not None else None


class CircuitOperations:
    alias: str
    connection: Any

    def _flow_clock(self) -> float:
        raise NotImplementedError

    def _change_circuit(
        self, row: Circuit, new_state: str, reason: str, job_id: int | None, now: float
    ) -> None:
        old = row.state
        row.state = new_state
        if new_state == CircuitState.OPEN:
            row.opened_at = datetime.fromtimestamp(now, tz=UTC)
            row.failures = []
        if new_state != CircuitState.HALF_OPEN:
            row.probe_job_id = None
        else:
            row.probe_job_id = job_id
        row.save(using=self.alias)
        CircuitEvent.objects.using(self.alias).create(
            circuit=row, old_state=old, new_state=new_state, reason=reason, job_id=job_id
        )
        logger.warning(
            "circuit %s: %s -> %s (%s)",
            row.name,
            old,
            new_state,
            reason,
            extra={"circuit": row.name, "job_id": job_id},
        )

        def send() -> None:
            signals.circuit_state_changed.send_robust(
                sender=None, circuit=row.name, old_state=old, new_state=new_state, reason=reason
            )

        transaction.on_commit(send, using=self.alias)

    def _locked_circuit(self, name: str) -> Circuit:
        circuits = Circuit.objects.using(self.alias)
        circuits.get_or_create(name=name)  # a concurrent create: one wins, both read it
        return circuits.select_for_update().get(name=name)

    def record_circuit_failure(self, task_name: str, job_id: int) -> None:
        """In fail_job's transaction: count a failed attempt of a circuit's job."""
        name = circuit_of(task_name)
        if name is None:
            return
        config = circuit_config(name)
        now = self._flow_clock()
        row = self._locked_circuit(name)
        if row.state == CircuitState.HALF_OPEN:
            self._change_circuit(row, CircuitState.OPEN, "the probe failed", job_id, now)
        elif row.state == CircuitState.CLOSED:
            recent = [t for t in row.failures if t > now - config["WINDOW"]] + [now]
            if len(recent) >= config["FAILURES"]:
                reason = f"{len(recent)} failures within {config['WINDOW']:g}s"
                self._change_circuit(row, CircuitState.OPEN, reason, job_id, now)
            else:
                row.failures = recent
                row.save(using=self.alias, update_fields=["failures", "updated_at"])

    def record_circuit_successes(self, task_names: dict[int, str]) -> None:
        """After completions commit: a half-open circuit's probe succeeded -> closed."""
        probes = {job_id: circuit_of(name) for job_id, name in task_names.items()}
        probes = {job_id: name for job_id, name in probes.items() if name is not None}
        if not probes:
            return
        candidates = Circuit.objects.using(self.alias).filter(
            state=CircuitState.HALF_OPEN, probe_job_id__in=list(probes)
        )
        if not candidates.exists():  # the common case: one cheap read
            return
        with transaction.atomic(using=self.alias):
            for row in candidates.select_for_update():
                now = self._flow_clock()
                self._change_circuit(
                    row, CircuitState.CLOSED, "the probe succeeded", row.probe_job_id, now
                )

    def circuit_allowance(
        self, lanes: list[FlowLane], now: float
    ) -> tuple[dict[str, int], dict[str, Circuit]]:
        """Circuit name -> jobs its lanes may start in this claim (absent: no limit).

        Called inside the gated claim's transaction; locks the circuits it
        may change (returned too). An OPEN circuit past its COOLDOWN, or a
        HALF_OPEN one whose probe is not running, allows one job: the probe.
        """
        names = sorted({lane.circuit for lane in lanes if lane.circuit})
        if not names:
            return {}, {}
        circuits = Circuit.objects.using(self.alias).filter(name__in=names)
        existing = set(circuits.values_list("name", flat=True))
        if self.connection.features.has_select_for_update_skip_locked:
            circuits = circuits.select_for_update(skip_locked=True)
        locked = {row.name: row for row in circuits}
        allowance: dict[str, int] = dict.fromkeys(existing - set(locked), 0)
        for name, row in locked.items():
            if row.state == CircuitState.OPEN:
                opened = row.opened_at.timestamp() if row.opened_at else 0.0
                ready = now - opened >= circuit_config(name)["COOLDOWN"]
                allowance[name] = 1 if ready else 0
            elif row.state == CircuitState.HALF_OPEN:
                probe = None
                if row.probe_job_id is not None:
                    probe = (
                        Job.objects.using(self.alias)
                        .filter(pk=row.probe_job_id)
                        .values_list("status", flat=True)
                        .first()
                    )
                if probe == JobStatus.SUCCESSFUL:
                    # Its completion committed; the worker closes it right
                    # after (record_circuit_successes): we hold the lock, close it now.
                    self._change_circuit(
                        row, CircuitState.CLOSED, "the probe succeeded", row.probe_job_id, now
                    )
                else:
                    # RUNNING: still probing. Otherwise it was handed back or
                    # recovered to READY, or cancelled: one new probe.
                    allowance[name] = 0 if probe == JobStatus.RUNNING else 1
        return allowance, locked

    def circuit_probes_started(
        self, probes: dict[str, int], locked: dict[str, Circuit], now: float
    ) -> None:
        """Circuit name -> the probe job just claimed for it (same transaction)."""
        for name, job_id in probes.items():
            row = locked[name]
            reason = (
                "cooldown over: one probe job"
                if row.state == CircuitState.OPEN
                else "the probe did not finish: a new probe job"
            )
            self._change_circuit(row, CircuitState.HALF_OPEN, reason, job_id, now)
