"""Which flow lane a new job joins, computed once at enqueue and stored.

A task with ``concurrency_limit`` or ``rate_limit`` puts its jobs in the lane
named by its key (``concurrency_key``, else ``rate_limit_key``: a string, or
a callable given the job's arguments), or ``task:<dotted name>`` without one.
Explicit keys are shared by every task using them. A task without limits of
its own, in a queue with ``DJANGO_JOBS["QUEUES"]`` limits, joins the lane
``queue:<name>``; one with only a ``circuit``, the lane ``task:<dotted name>``
(the lane row names the circuit the claim checks). Every other job has no
lane and takes the fast claim path.

One lane per job, so limits compose only within it: a task's
``concurrency_limit`` and ``rate_limit`` share its key (the options refuse
different keys), and a task with limits or a circuit of its own is refused
in a queue that has ``QUEUES`` limits (when the task is defined, at enqueue
for ``using(queue_name=...)``, and by the check ``django_jobs.E404``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django_jobs.codec import unstorable_text
from django_jobs.conf import jobs_settings
from django_jobs.exceptions import InvalidJobOptions
from django_jobs.flow.rates import parse_rate
from django_jobs.options import queue_limits_problem
from django_jobs.rows import LaneSpec

if TYPE_CHECKING:
    from django_jobs.options import JobOptions

MAX_LANE_LENGTH = 255
Arguments = Callable[[], tuple[Sequence[Any], Mapping[str, Any]]]


def _key(
    where: str, option: str, value: str | Callable[..., str] | None, arguments: Arguments
) -> str | None:
    if value is None or isinstance(value, str):
        return value
    args, kwargs = arguments()
    try:
        key = value(*args, **kwargs)
    except Exception as exc:
        raise InvalidJobOptions(
            f"{where}: {option} raised {type(exc).__name__}: {exc}; nothing was enqueued"
        ) from exc
    if not isinstance(key, str) or not key:
        raise InvalidJobOptions(f"{where}: {option} must return a non-empty string, got {key!r}")
    if len(key) > MAX_LANE_LENGTH or unstorable_text(key) is not None:
        raise InvalidJobOptions(
            f"{where}: {option} returned {key[:60]!r}, which is longer than "
            f"{MAX_LANE_LENGTH} characters or not storable"
        )
    return key


def lane_for(
    options: JobOptions, name: str, queue_name: str, arguments: Arguments
) -> LaneSpec | None:
    """The lane of a job of task ``name`` in ``queue_name``; ``arguments()``
    gives its (args, kwargs) when a key callable needs them."""
    circuit = options.circuit
    if circuit is not None and circuit not in (jobs_settings.CIRCUITS or {}):
        raise InvalidJobOptions(
            f"{name}: circuit {circuit!r} is not in DJANGO_JOBS['CIRCUITS']; nothing was enqueued"
        )
    problem = queue_limits_problem(options, queue_name)
    if problem is not None:
        raise InvalidJobOptions(f"{name}: {problem}; nothing was enqueued")
    if options.concurrency_limit is None and options.rate_limit is None:
        if circuit is not None:
            return LaneSpec(f"task:{name}", None, None, None, circuit)
        queues = jobs_settings.QUEUES
        config = queues.get(queue_name) if queues else None
        if not config:
            return None
        rate = config.get("RATE_LIMIT")
        limit, period = parse_rate(rate) if rate else (None, None)
        return LaneSpec(f"queue:{queue_name}", config.get("CONCURRENCY"), limit, period)
    concurrency_key = _key(name, "concurrency_key", options.concurrency_key, arguments)
    rate_key = _key(name, "rate_limit_key", options.rate_limit_key, arguments)
    if concurrency_key is not None and rate_key is not None and concurrency_key != rate_key:
        raise InvalidJobOptions(
            f"{name}: concurrency_key {concurrency_key!r} and rate_limit_key {rate_key!r} "
            "differ; a job has one lane, give one key"
        )
    limit, period = parse_rate(options.rate_limit) if options.rate_limit else (None, None)
    key = concurrency_key or rate_key or f"task:{name}"
    return LaneSpec(key, options.concurrency_limit, limit, period, circuit)
