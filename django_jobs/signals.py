"""Django signals sent by django_jobs.

- ``job_enqueued(sender=Task|None, job=Job)``: after the enqueue transaction commits.
- ``job_started(sender=None, job=ClaimedJob)``: in the worker, before the task runs.
- ``job_finished(sender=None, job=ClaimedJob, status=str, result=..., error=dict|None)``:
  in the worker, after the outcome is decided (sent with ``send_robust``: a
  raising receiver never changes the outcome).
"""

from __future__ import annotations

from django.dispatch import Signal

job_enqueued = Signal()
job_started = Signal()
job_finished = Signal()
# A circuit breaker changed state (django_jobs.flow.circuits), sent once the
# change is committed: circuit (name), old_state, new_state, reason.
circuit_state_changed = Signal()
