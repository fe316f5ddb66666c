"""Tasks used by the tests; the worker subprocess imports them by dotted path."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any

from django_jobs import Discard, JobCancelled, Retry, current_job, task
from django_jobs.outbox.publishers import Publisher
from django_jobs.rows import Event as OutboxEventData
from tests.testapp.models import Event, Execution


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def noop() -> None:
    return None


@task
def record(tag: str = "") -> int:
    """Record this execution; a second execution of the same job violates the unique key."""
    job = current_job()
    Execution.objects.create(job_id=job.id, attempt=job.attempt)
    return job.id


@task(atomic=True)
def record_atomic(tag: str = "") -> int:
    job = current_job()
    Execution.objects.create(job_id=job.id, attempt=job.attempt)
    return job.id


@task(max_attempts=3, backoff="fixed")
def fail_times(times: int) -> int:
    """Fails ``times`` times, then succeeds; returns the successful attempt."""
    attempt = current_job().attempt
    Event.objects.create(job_id=current_job().id, name="attempt", value={"attempt": attempt})
    if attempt <= times:
        raise RuntimeError(f"planned failure {attempt}/{times}")
    return attempt


@task(max_attempts=1)
def fails_if(fail: bool) -> bool:
    """Fails for good (no retry: a dead letter at once) when ``fail``; else succeeds."""
    if fail:
        raise RuntimeError("asked to fail")
    return True


@task(max_attempts=2, backoff="fixed")
def always_fails() -> None:
    raise ValueError("this task always fails")


@task(max_attempts=5)
def discards() -> None:
    raise Discard("not worth retrying")


@task(max_attempts=5)
def retries_later(seconds: float) -> str:
    if current_job().attempt == 1:
        raise Retry(delay=timedelta(seconds=seconds))
    return "second try"


@task(max_attempts=5, discard_on=(KeyError,))
def raises_key_error() -> None:
    raise KeyError("missing")


@task(max_attempts=5, retry_on=(ConnectionError,))
def raises_type_error() -> None:
    raise TypeError("not in retry_on")


@task
def returns_set() -> Any:
    return {1, 2, 3}


@task
def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task(timeout=1, max_attempts=2, backoff="fixed")
def sleeps_past_timeout(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task
def with_progress(steps: int) -> int:
    for step in range(1, steps + 1):
        current_job().set_progress({"step": step, "of": steps})
    return steps


@task
def exits_process() -> None:
    os._exit(1)


@task(priority=5, queue_name="other")
def in_other_queue() -> str:
    return "other"


@task
async def async_add(a: int, b: int) -> int:
    return a + b


# -- crash safety (tests/e2e/test_crash_*.py) ------------------------------------


@task(atomic=True, max_attempts=25)
def chaos_record(n: int) -> int:
    """Exactly-once effect under chaos: many attempts allowed, unique job_id."""
    job = current_job()
    Execution.objects.create(job_id=job.id, attempt=job.attempt)
    return n


@task(max_attempts=5)
def slow_first_attempt(seconds: float) -> int:
    """Attempt 1 sleeps (no database connection held), then every attempt records."""
    job = current_job()
    if job.attempt == 1:
        time.sleep(seconds)
    Execution.objects.create(job_id=job.id, attempt=job.attempt)
    return job.attempt


@task(atomic=True, max_attempts=5)
def stale_atomic(seconds: float) -> int:
    """Writes first, sleeps, then completes: a stale run's write must roll back."""
    job = current_job()
    Event.objects.create(job_id=job.id, name="stale_atomic", value={"attempt": job.attempt})
    time.sleep(seconds)
    return job.attempt


@task(max_attempts=5)
def long_event(seconds: float) -> int:
    """Logs each start (several rows if it ever ran twice), then runs long."""
    job = current_job()
    Event.objects.create(job_id=job.id, name="long_event", value={"attempt": job.attempt})
    time.sleep(seconds)
    return job.attempt


@task(max_attempts=2, backoff="fixed")
def crash_segfault() -> None:
    import ctypes

    ctypes.string_at(0)  # reads address 0: SIGSEGV


@task(max_attempts=2, backoff="fixed")
def crash_sigkill() -> None:
    os.kill(os.getpid(), 9)  # what the OOM killer does


@task(max_attempts=2, backoff="fixed")
def crash_exit() -> None:
    os._exit(1)


@task
def whoami() -> int:
    """The pid of the process that ran the job."""
    return os.getpid()


_hoard: list[bytearray] = []


@task
def hog_memory(mib: int) -> int:
    """Keeps ``mib`` MiB allocated in this process; returns its pid."""
    size = mib * 1024 * 1024
    buffer = bytearray(size)
    buffer[::4096] = b"x" * (size // 4096)  # touch every page: really resident
    _hoard.append(buffer)
    return os.getpid()


@task(atomic=True, max_attempts=10)
def record_atomic_slowly(seconds: float) -> int:
    """Records, then keeps its transaction open for a while (a kill aborts it)."""
    job = current_job()
    Execution.objects.create(job_id=job.id, attempt=job.attempt)
    time.sleep(seconds)
    return job.attempt


@task
def backend_pid() -> int:
    """The PostgreSQL backend serving this job's connection."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


@task(max_attempts=1)
def returns_nul() -> str:
    """A result PostgreSQL's jsonb cannot hold (it must not block other outcomes)."""
    return "binary\x00data"


@task(max_attempts=1)
def raises_nul() -> None:
    raise ValueError("bad byte \x00 in input")


from tests.testapp import subscribers  # noqa: E402, F401 - registers the outbox subscribers

# -- payload limits and unstorable values (tests/e2e/test_payload_limits.py) --

_BAD_PROGRESS: dict[str, Any] = {
    "nul": {"step": "a\x00b"},
    "surrogate": {"step": "\ud800"},
    "oversized": {"blob": "x" * (1024 * 1024 + 1)},
}


@task(max_attempts=1)
def returns_oversized(size: int) -> str:
    """A result of ``size`` characters (over the default MAX_PAYLOAD_BYTES when big)."""
    return "x" * size


@task(max_attempts=1)
def sets_bad_progress(kind: str) -> str:
    """Calls set_progress with a value that cannot be stored; must raise at the call."""
    current_job().set_progress(_BAD_PROGRESS[kind])
    return "set_progress returned"


@task(max_attempts=1, atomic=True)
def sets_bad_progress_atomic(kind: str) -> str:
    current_job().set_progress(_BAD_PROGRESS[kind])
    return "set_progress returned"


class UnprintableError(Exception):
    """Its ``__str__`` raises: formatting it must not take a worker thread down."""

    def __str__(self) -> str:
        raise RuntimeError("UnprintableError.__str__ is broken")


class UnreprableError(UnprintableError):
    """Its ``__repr__`` raises too."""

    def __repr__(self) -> str:
        raise RuntimeError("UnreprableError.__repr__ is broken")


@task(max_attempts=2, backoff="fixed")
def raises_unprintable(reprable: bool = True) -> None:
    raise (UnprintableError if reprable else UnreprableError)("the real message")


@task(max_attempts=1)
def fails_for_good() -> None:
    raise ValueError("dead-lettered at once")


class UnprintablePublisher(Publisher):
    """An outbox publisher whose delivery errors cannot be printed."""

    def publish(self, event: OutboxEventData) -> None:
        raise UnprintableError(f"event {event.id} not accepted")


@task
def enqueues_add(a: int, b: int) -> int:
    """Enqueue ``add(a, b)`` from inside a job (its trace continues); return its id."""
    return add.enqueue(a, b).pk


# -- cancelling running jobs (tests/e2e/test_cancel.py) --------------------------


def _note(name: str, **value: Any) -> None:
    Event.objects.create(job_id=current_job().id, name=name, value=value)


@task(max_attempts=3, backoff="fixed")
def loops_until_cancelled(seconds: float) -> str:
    """Pure Python between short sleeps: the thread pool's JobCancelled lands here."""
    _note("started", pid=os.getpid())
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        _note("stopping", cancel_requested=current_job().cancel_requested)
    return "ran to the end"


@task(atomic=True, max_attempts=3, backoff="fixed")
def writes_then_loops(seconds: float) -> str:
    """Writes, then loops: a cancel must roll the write back."""
    _note("atomic write")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.1)
    return "ran to the end"


@task(max_attempts=3, backoff="fixed")
def sleeps_in_c(seconds: float) -> str:
    """One long C-level sleep (PEP 475 resumes it after a signal handler ran)."""
    Event.objects.create(job_id=current_job().id, name="started", value={"pid": os.getpid()})
    time.sleep(seconds)
    return "ran to the end"


@task(max_attempts=3, backoff="fixed")
def cooperative_stop(seconds: float) -> str:
    """Checks cancel_requested itself (the way to stop early in the process pool)."""
    _note("started", pid=os.getpid())
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if current_job().cancel_requested:
            _note("saw cancel")
            raise JobCancelled("stopping on request")
        time.sleep(0.05)
    return "ran to the end"


@task(max_attempts=3, backoff="fixed")
def busy_for(seconds: float) -> float:
    """Busy for ``seconds`` then returns: for races between a cancel and completion."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return seconds


@task(atomic=True, max_attempts=3, backoff="fixed")
def busy_for_atomic(seconds: float) -> float:
    _note("atomic write")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return seconds


# -- the example of docs/howto/testing.md ------------------------------------------


@task(max_attempts=3)
def send_receipt(order_id: int) -> str:
    Event.objects.create(name="receipt", value={"order_id": order_id})
    return f"receipt for order {order_id}"


def place_order(order_id: int) -> None:
    """What a view would do: in one transaction, publish the event and enqueue
    the receipt for ten minutes later."""
    # Imported here: this module is imported while the app registry loads.
    from django.db import transaction

    from django_jobs import outbox

    with transaction.atomic():
        outbox.publish("order.created", {"order_id": order_id}, key=str(order_id))
        send_receipt.using(run_after=timedelta(minutes=10)).enqueue(order_id)


# -- workflows (tests/e2e/test_workflows.py) --------------------------------


@task
def wf_add(a: int, b: int) -> int:
    return a + b


@task(atomic=True)
def wf_square(n: int, pause: float = 0.0) -> int:
    """Records its one effect (atomic: exactly once even when its worker dies)."""
    Event.objects.create(job_id=current_job().id, name="wf_square", value={"n": n})
    if pause:
        time.sleep(pause)
    return n * n


@task(atomic=True)
def wf_collect(results: list[int]) -> int:
    """A chord callback: records the results it got."""
    Event.objects.create(job_id=current_job().id, name="wf_collect", value={"results": results})
    return len(results)


@task(atomic=True, max_attempts=2, backoff="fixed")
def saga_do(name: str, fail: bool = False) -> str:
    Event.objects.create(job_id=current_job().id, name=f"do:{name}")
    if fail:
        raise RuntimeError(f"saga step {name} fails")
    return name


@task(atomic=True, max_attempts=3, backoff="fixed")
def saga_undo(name: str, fail_times: int = 0) -> str:
    """A compensation; fails its first ``fail_times`` attempts (own retries)."""
    if current_job().attempt <= fail_times:
        raise RuntimeError(f"compensation {name} fails attempt {current_job().attempt}")
    Event.objects.create(job_id=current_job().id, name=f"undo:{name}")
    return name


@task(atomic=True, max_attempts=2, backoff="fixed")
def saga_undo_until_fixed(name: str) -> str:
    """A compensation that fails until an operator fixed the cause (an Event "fixed")."""
    if not Event.objects.filter(name="fixed").exists():
        raise RuntimeError(f"compensation {name}: the refund service is down")
    Event.objects.create(job_id=current_job().id, name=f"undo:{name}")
    return name


@task(max_attempts=1)
def wf_sleep(seconds: float) -> float:
    """One attempt only: a worker killed during it dead-letters the job."""
    time.sleep(seconds)
    return seconds


# The chaos test kills a worker every 2 s: a job may lose several attempts to
# kills, so its tasks have attempts to spare (a step must fail only when planned).


@task(atomic=True, max_attempts=10, backoff="fixed")
def chaos_square(n: int, pause: float = 0.0) -> int:
    Event.objects.create(job_id=current_job().id, name="wf_square", value={"n": n})
    time.sleep(pause)
    return n * n


@task(atomic=True, max_attempts=10, backoff="fixed")
def chaos_collect(results: list[int]) -> int:
    Event.objects.create(job_id=current_job().id, name="wf_collect", value={"results": results})
    return len(results)


@task(atomic=True, max_attempts=10, backoff="fixed")
def chaos_do(name: str, fail: bool = False) -> str:
    """A saga step; ``fail``: gives up at once (Discard), its write rolled back."""
    Event.objects.create(job_id=current_job().id, name=f"do:{name}")
    if fail:
        raise Discard(f"saga step {name} fails")
    return name


@task(atomic=True, max_attempts=10, backoff="fixed")
def chaos_add(a: int, b: int, tag: str) -> int:
    """A chain step with one effect, named by ``tag``."""
    Event.objects.create(job_id=current_job().id, name=f"add:{tag}", value={"sum": a + b})
    return a + b


@task(atomic=True, max_attempts=10, backoff="fixed")
def chaos_undo(name: str, fail_times: int = 0) -> str:
    if current_job().attempt <= fail_times:
        raise RuntimeError(f"compensation {name} fails attempt {current_job().attempt}")
    Event.objects.create(job_id=current_job().id, name=f"undo:{name}")
    return name
