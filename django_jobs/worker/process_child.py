"""The child side of the process pool: its loop, and the pipe's wire format.

A child is forked by :class:`~django_jobs.worker.process_pool.ProcessExecutor`
and never returns into the parent's code: it runs :func:`child_main` and
exits. On SQLite children are spawned instead and enter through
:mod:`~django_jobs.worker.spawned_child`.
Messages are JSON (never pickle): a job one way, its outcome back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
import time
import uuid
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from django.db import connections

from django_jobs.context import note_cancel_requested
from django_jobs.observability import tracing
from django_jobs.rows import Cancellation, ClaimedJob, Completion, Failure
from django_jobs.worker.runner import Outcome, Settled, run_job

# Exit code of a child whose own loop failed, or whose parent died.
CHILD_BROKEN = 70


def child_main(
    conn: Connection, parent_pid: int, max_tasks: int | None, max_memory: int | None
) -> int:
    """Run jobs received on ``conn`` until it closes or it is time to retire."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, _on_cancel)
    _forget_inherited_connections()
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    conn.send_bytes(b'{"ready": true}')
    done = 0
    try:
        while True:
            try:
                job = decode_job(conn.recv_bytes())
            except (EOFError, OSError):
                return 0
            _running[:] = [job.id]
            try:
                outcome = run_job(job)
            finally:
                _running.clear()
            done += 1
            retire = bool(max_tasks and done >= max_tasks) or bool(
                max_memory and resident_memory() > max_memory
            )
            conn.send_bytes(encode_outcome(outcome, retire=retire))
            if retire:
                return 0
    finally:
        connections.close_all()
        if tracing.AVAILABLE:
            tracing.flush()  # a forked child ends with os._exit: no exit hooks run


# The id of the job this child runs right now (empty between jobs).
_running: list[int] = []


def _on_cancel(signum: int, frame: Any) -> None:
    """SIGUSR1 from the parent: the running job was cancelled. Only noted, so
    ``current_job().cancel_requested`` turns True; the parent kills this child
    after CANCEL_GRACE if the job has not ended by then. Between jobs (the
    job it was meant for just ended) there is nothing to note."""
    for job_id in list(_running):
        note_cancel_requested(job_id)


def _forget_inherited_connections() -> None:
    # The parent's connection objects stay referenced (never finalised here)
    # and are dropped from Django's handler; the first query opens a new one.
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            _INHERITED.append(conn.connection)
            conn.connection = None
        conn.in_atomic_block = False
        conn.needs_rollback = False
        conn.savepoint_ids = []
        conn.run_on_commit = []


_INHERITED: list[Any] = []


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(CHILD_BROKEN)  # the worker died: its jobs will be recovered


def resident_memory() -> int:
    """This process's resident set size in bytes."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource  # only where /proc is missing (macOS): peak, not current, memory

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


# -- wire format: JSON over the pipe ------------------------------------------
_UUID_FIELDS = ("claim_token", "worker_id")
# The last two may be None.
_TIME_FIELDS = (
    "run_after",
    "enqueued_at",
    "started_at",
    "last_attempted_at",
    "requested_run_after",
)


def encode_job(job: ClaimedJob) -> bytes:
    fields = {f.name: getattr(job, f.name) for f in dataclasses.fields(job)}
    for name in _UUID_FIELDS:
        fields[name] = str(fields[name])
    for name in _TIME_FIELDS:
        if fields[name] is not None:
            fields[name] = fields[name].isoformat()
    return json.dumps(fields).encode()


def decode_job(data: bytes) -> ClaimedJob:
    fields = json.loads(data)
    for name in _UUID_FIELDS:
        fields[name] = uuid.UUID(fields[name])
    for name in _TIME_FIELDS:
        if fields.get(name) is not None:
            fields[name] = datetime.fromisoformat(fields[name])
    return ClaimedJob(**fields)


def encode_outcome(outcome: Outcome, *, retire: bool) -> bytes:
    message: dict[str, Any] = {"retire": retire}
    if isinstance(outcome, Completion):
        message.update(kind="completion", result_json=outcome.result_json)
    elif isinstance(outcome, Cancellation):
        message.update(kind="cancelled", error=outcome.error)
    elif isinstance(outcome, Failure):
        # The error entry names the task's exception class (dotted) and its message.
        retry_at = outcome.retry_at.isoformat() if outcome.retry_at else None
        message.update(
            kind="failure", error=outcome.error, retry_at=retry_at, reason=outcome.reason
        )
    else:
        message.update(kind=outcome.value)  # Settled: "written" or "lost"
    return json.dumps(message).encode()


def decode_outcome(job: ClaimedJob, message: dict[str, Any]) -> Outcome:
    if message["kind"] == "completion":
        return Completion(job, message["result_json"])
    if message["kind"] == "cancelled":
        return Cancellation(job, message["error"])
    if message["kind"] == "failure":
        retry_at = message["retry_at"]
        return Failure(
            job,
            message["error"],
            datetime.fromisoformat(retry_at) if retry_at else None,
            message["reason"],
        )
    return Settled(message["kind"])
