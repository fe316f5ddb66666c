"""Flow control in the claim, through the Django ORM (SQLite, and the parts
PostgreSQL shares): mixed into ``GenericEngine``.

Jobs without a lane are claimed by the fast path, which only adds
``flow_lane IS NULL`` and "queue not paused" to it. Jobs with a lane are
claimed here, in one transaction:

1. the lanes with READY jobs, by a skip scan of ``jobs_job_ready_lane`` (one
   index probe per lane, starting after the last lane this engine visited, so
   every lane gets its turn when there are more than ``LANES_PER_CLAIM``);
2. their FlowLane rows, locked: ``FOR UPDATE SKIP LOCKED`` where the database
   has it (a lane another worker is claiming from right now is skipped, not
   waited for), SQLite's IMMEDIATE transaction otherwise (one writer at a time);
3. then, in later statements (so on PostgreSQL's READ COMMITTED a fresh
   snapshot that sees every claim committed before our lock), the RUNNING
   jobs of those lanes are counted and their sliding windows read;
4. each lane's head jobs, up to its free slots (and its circuit's
   allowance, ``engine.circuits``), are claimed, and the starts are added to
   each lane's window before commit.

Every claim of a lane's job holds that lane's row lock, so a count and the
claims it allows can never interleave with another claimer's: at most
``concurrency_limit`` jobs are ever RUNNING and at most ``rate_limit`` start
per window. A lane that is full costs nothing but its probe: its jobs stay
READY with no attempt counted, and other lanes (and lane-free jobs) are
claimed past it, so nothing waits behind it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, F, Value
from django.db.models.functions import Coalesce

from django_jobs.engine.circuits import CircuitOperations
from django_jobs.engine.claimed import CLAIMED_COLUMNS
from django_jobs.flow import rates
from django_jobs.models import FlowLane, Job, JobQuerySet, Queue
from django_jobs.rows import ClaimedJob, LaneSpec, NewJob
from django_jobs.status import JobStatus

# Lanes one gated claim looks at.
LANES_PER_CLAIM = 100

# The lanes with READY jobs after %s ('' for all: keys are never empty), in
# key order (skip scan of the partial index jobs_job_ready_lane:
# ``flow_lane > x`` implies NOT NULL, so both
# PostgreSQL and SQLite use it). Read-only: a lane it reports may be empty by
# the time it is locked, which step 4 simply finds.
WAITING_LANES = """
WITH RECURSIVE lanes(name) AS (
    SELECT MIN(flow_lane) FROM django_jobs_job WHERE status = 'READY' AND flow_lane > %s
    UNION ALL
    SELECT (SELECT MIN(flow_lane) FROM django_jobs_job
            WHERE status = 'READY' AND flow_lane > lanes.name)
    FROM lanes WHERE lanes.name IS NOT NULL
)
SELECT name FROM lanes WHERE name IS NOT NULL LIMIT %s
"""

_CLAIMED_FIELDS = (*CLAIMED_COLUMNS, "worker_id")


def lane_fields(spec: LaneSpec) -> dict[str, Any]:
    return {
        "concurrency_limit": spec.concurrency_limit,
        "rate_limit": spec.rate_limit,
        "rate_period": spec.rate_period,
        "circuit": spec.circuit,
    }


def free_slots(lane: FlowLane, running: int, now: float) -> int:
    """Jobs ``lane`` may start now (a large number when it has no limit)."""
    free = 1 << 30
    if lane.concurrency_limit is not None:
        free = lane.concurrency_limit - running
    if lane.rate_limit is not None and lane.rate_period:
        current = rates.bucket_of(now, lane.rate_period)
        free = min(free, rates.allowed_starts(lane.rate_limit, lane.rate_buckets or [], current))
    return max(free, 0)


class FlowOperations(CircuitOperations):
    """Lanes at enqueue, pause-aware filters and the gated claim."""

    alias: str
    connection: Any
    _lane_cursor: str = ""  # where the next skip scan starts (a hint, not a guarantee)

    # -- enqueue -----------------------------------------------------------

    def _ensure_lanes(self, rows: Sequence[NewJob]) -> None:
        """Make the FlowLane rows the new jobs name, or update changed limits.

        A read first (no lock) so the common case, lanes already there as
        they are, writes nothing and never waits for a claimer holding a lane.
        Concurrent enqueues making the same lane both insert with
        ignore_conflicts (ON CONFLICT DO NOTHING): one row, no error.
        """
        specs = {row.lane.key: row.lane for row in rows if row.lane is not None}
        if not specs:
            return
        lanes = FlowLane.objects.using(self.alias)
        existing = {lane.key: lane for lane in lanes.filter(key__in=list(specs))}
        missing = [FlowLane(key=k, **lane_fields(s)) for k, s in specs.items() if k not in existing]
        if missing:
            lanes.bulk_create(missing, ignore_conflicts=True)
        for key, lane in existing.items():
            wanted = lane_fields(specs[key])
            if any(getattr(lane, name) != value for name, value in wanted.items()):
                # The limits of the latest code win (a deploy changed them).
                lanes.filter(key=key).update(**wanted)

    # -- claiming ------------------------------------------------------------

    def _paused(self) -> Any:
        return Queue.objects.using(self.alias).filter(paused=True).values("name")

    def _unpaused(self, qs: JobQuerySet) -> JobQuerySet:
        return qs.exclude(queue_name__in=self._paused())

    def _waiting_lanes(self) -> list[str]:
        start = self._lane_cursor
        with self.connection.cursor() as cursor:
            cursor.execute(WAITING_LANES, [start, LANES_PER_CLAIM])
            found = [row[0] for row in cursor.fetchall()]
            if start and len(found) < LANES_PER_CLAIM:  # wrap around to the first lanes
                cursor.execute(WAITING_LANES, ["", LANES_PER_CLAIM])
                seen = set(found)
                found += [row[0] for row in cursor.fetchall() if row[0] not in seen]
                found = found[:LANES_PER_CLAIM]
        # Continue after the last lane seen (in the database's collation) next time.
        self._lane_cursor = found[-1] if len(found) >= LANES_PER_CLAIM else ""
        return found

    def held_back(self, queues: Sequence[str] | None) -> tuple[int, int]:
        """Due READY jobs of ``queues`` that a claim leaves: (behind a lane,
        in a paused queue). Read-only (``runworker --burst``, worker.burst)."""
        due = Job.objects.using(self.alias).filter(
            status=JobStatus.READY, run_after__lte=datetime.now(tz=UTC)
        )
        due = due.for_queues(queues)
        paused = due.filter(queue_name__in=self._paused()).count()
        behind = self._unpaused(due.filter(flow_lane__isnull=False)).count()
        return behind, paused

    def _flow_clock(self) -> float:
        """Epoch seconds for the rate windows (the database's clock on PostgreSQL)."""
        return time.time()

    def claim_gated(
        self, worker_id: uuid.UUID, queues: Sequence[str] | None, limit: int, lease_seconds: float
    ) -> list[ClaimedJob]:
        """Claim up to ``limit`` jobs that have a lane, within their lanes' limits."""
        if limit <= 0:
            return []
        with transaction.atomic(using=self.alias):
            keys = self._waiting_lanes()
            if not keys:
                return []
            locked = FlowLane.objects.using(self.alias).filter(key__in=keys).order_by("key")
            if self.connection.features.has_select_for_update_skip_locked:
                locked = locked.select_for_update(skip_locked=True)
            lanes = list(locked)
            if not lanes:
                return []
            now = self._flow_clock()
            running = dict(
                Job.objects.using(self.alias)
                .filter(status=JobStatus.RUNNING, flow_lane__in=[lane.key for lane in lanes])
                .values("flow_lane")
                .annotate(n=Count("id"))
                .values_list("flow_lane", "n")
            )
            allowance, circuits = self.circuit_allowance(lanes, now)
            probing = {name for name, n in allowance.items() if n > 0}
            want: dict[str, int] = {}
            budget = limit
            for lane in lanes:
                free = min(free_slots(lane, running.get(lane.key, 0), now), budget)
                if lane.circuit in allowance:
                    free = min(free, allowance[lane.circuit])
                    allowance[lane.circuit] -= max(free, 0)
                if free > 0:
                    want[lane.key] = free
                    budget -= free
                if budget <= 0:
                    break
            if not want:
                return []
            claimed, per_lane = self._take_lane_heads(want, queues, worker_id, lease_seconds, now)
            probes = {
                lane.circuit: per_lane[lane.key][0]
                for lane in lanes
                if lane.circuit in probing and per_lane.get(lane.key)
            }
            if probes:
                self.circuit_probes_started(probes, circuits, now)
            # Every lane that started jobs is written, its rate window or the
            # row as it is: PostgreSQL's one-statement claim
            # (engine.flow_postgres) relies on a claim making a new version.
            changed = []
            for lane in lanes:
                started = len(per_lane.get(lane.key, ()))
                if not started:
                    continue
                if lane.rate_limit is not None and lane.rate_period:
                    current = rates.bucket_of(now, lane.rate_period)
                    window = lane.rate_buckets or []
                    lane.rate_buckets = rates.record_starts(window, current, started)
                changed.append(lane)
            if changed:
                FlowLane.objects.using(self.alias).bulk_update(changed, ["rate_buckets"])
        return claimed

    def _take_lane_heads(
        self,
        want: dict[str, int],
        queues: Sequence[str] | None,
        worker_id: uuid.UUID,
        lease_seconds: float,
        clock: float,
    ) -> tuple[list[ClaimedJob], dict[str, list[int]]]:
        """Claim each lane's first ``want[lane]`` due jobs (in claim order);
        returns the claims and the ids each lane got. The caller holds the
        lanes' locks (SQLite: the write lock). ``clock`` (epoch seconds, the
        rate windows' time) is the attempt's recorded start."""
        now = datetime.fromtimestamp(clock, tz=UTC)
        jobs = Job.objects.using(self.alias)
        due = self._unpaused(
            jobs.filter(status=JobStatus.READY, run_after__lte=now).for_queues(queues)
        )
        ids: list[int] = []
        for key, count in want.items():
            heads = due.filter(flow_lane=key).claim_order().values_list("pk", flat=True)
            ids += list(heads[:count])
        if not ids:
            return [], {}
        token = uuid.uuid4()
        jobs.filter(pk__in=ids, status=JobStatus.READY).update(
            status=JobStatus.RUNNING,
            attempts=F("attempts") + 1,
            started_at=Coalesce(F("started_at"), Value(now)),
            last_attempted_at=now,
            worker_id=worker_id,
            claim_token=token,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
        )
        rows = list(
            jobs.filter(pk__in=ids, claim_token=token)
            .claim_order()
            .values("flow_lane", *_CLAIMED_FIELDS)
        )
        per_lane: dict[str, list[int]] = {}
        for row in rows:
            per_lane.setdefault(row.pop("flow_lane"), []).append(row["id"])
        return [ClaimedJob(**row, database=self.alias) for row in rows], per_lane
