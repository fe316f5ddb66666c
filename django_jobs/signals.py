"""Django signals sent by django_jobs.

- ``job_enqueued(sender=Task|None, job=Job)``: after the enqueue transaction commits.
- ``job_started(sender=None, job=ClaimedJob)``: in the worker, before the task runs.
- ``job_finished(sender=None, job=ClaimedJob, status=str, result=..., error=dict|None)``:
  in the worker, after the outcome is decided (sent with ``send_robust``: a
  raising receiver never changes the outcome).
- ``alert(sender=None, rule=Rule, state="firing"|"resolved", value=float|None,
  message=str, event=AlertEvent)``: once per transition of a rule of
  ``DJANGO_JOBS["ALERTS"]``, cluster-wide, in the worker that made it, after
  the transition committed (``send_robust``). ``rule`` is a
  ``django_jobs.alerts.rules.Rule`` (name, kind, threshold, severity...),
  ``value`` the measured value (None: no data), ``message`` one line for humans.
- ``circuit_state_changed(sender=None, circuit=str, old_state=str, new_state=str,
  reason=str)``: a circuit breaker of ``DJANGO_JOBS["CIRCUITS"]`` changed
  state, sent once the change is committed.
"""

from __future__ import annotations

from django.dispatch import Signal

job_enqueued = Signal()
job_started = Signal()
job_finished = Signal()
alert = Signal()
# A circuit breaker changed state (django_jobs.flow.circuits), sent once the
# change is committed: circuit (name), old_state, new_state, reason.
circuit_state_changed = Signal()
