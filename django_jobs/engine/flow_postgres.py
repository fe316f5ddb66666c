"""The gated claim on PostgreSQL in ONE statement (``CLAIM_GATED``): mixed into
``PostgresEngine`` in front of the ORM version (``engine.flow``).

The ORM version takes 5 to 7 round trips in a transaction (skip scan, lane
locks, clock, RUNNING counts, circuits, heads, rate windows). Here the skip
scan, the lane locks, the RUNNING counts, the rate windows, the claim and the
lane writes are one autocommit statement, so a lane's lock is held for that
statement only. Lanes with a circuit are left to the ORM version (the
circuit's state machine lives there); the statement says when it saw some.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from django.db import OperationalError, transaction

from django_jobs.engine.claimed import claimed_mapper
from django_jobs.engine.flow import LANES_PER_CLAIM, FlowOperations
from django_jobs.engine.flow_postgres_sql import (
    CLAIM_GATED,
    CLAIM_LANE_HEADS,
    COMPLETE_AND_CLAIM_GATED_ALL_QUEUES,
    COMPLETE_AND_CLAIM_GATED_IN_QUEUES,
    HEAD_SPARE,
    LANE_LOCK_TIMEOUT,
    LOCK_LANES,
)
from django_jobs.engine.pg import hot_cursor, task_params
from django_jobs.engine.postgres_sql import FLOW_CLOCK
from django_jobs.flow.rates import RATE_BUCKETS
from django_jobs.rows import ClaimedJob, Completion, TaskFilter

logger = logging.getLogger("django_jobs.engine")

# A scan of the lanes that found no lane with a free slot but those of the
# jobs it finished (every other lane full, or held by other workers' claims)
# is not repeated for this many seconds: meanwhile the worker's statement
# hands each finished job's slot to the next job of its lane and claims
# lane-free jobs, and visits no lane. A lane freed or created meanwhile waits
# that long at most. While other lanes wait, every statement scans, and a
# finished job's slot goes back to the rotation (flow_postgres_sql).
DRY_SCAN_PAUSE = 0.05

_claimed_after_kind_and_lane = claimed_mapper(2)
_claimed_after_lane = claimed_mapper(1)  # CLAIM_LANE_HEADS: the lane, then the columns


@dataclasses.dataclass
class _Gated:
    """What one gated statement did."""

    rows: list[Any]
    claimed: list[ClaimedJob]
    lane_free: int  # claims without a lane (the combined statement's fast share)
    skipped: list[str]  # lanes another claimer held
    circuits: bool  # lanes with a circuit were seen (the ORM version claims them)
    dry: bool = False  # every lane was scanned: none but the finished jobs' had a free slot


class PostgresFlowOperations(FlowOperations):
    """``claim_gated`` by CLAIM_GATED, and the worker's complete-and-claim
    while lanes wait; the ORM version for lanes with a circuit."""

    _dry_scan_until = 0.0  # time.monotonic() before which no lane scan (DRY_SCAN_PAUSE)

    def _flow_clock(self) -> float:
        with self.connection.cursor() as cursor:
            cursor.execute(FLOW_CLOCK)
            return float(cursor.fetchone()[0])

    def _take_lane_heads(
        self,
        want: dict[str, int],
        queues: Sequence[str] | None,
        worker_id: uuid.UUID,
        lease_seconds: float,
        clock: float,
    ) -> tuple[list[ClaimedJob], dict[str, list[int]]]:
        with self.connection.cursor() as cursor:
            cursor.execute(
                CLAIM_LANE_HEADS,
                {
                    "lanes": list(want),
                    "counts": list(want.values()),
                    "queues": list(queues) if queues else None,
                    "worker_id": worker_id,
                    "lease": lease_seconds,
                    "clock": clock,
                    "spare": HEAD_SPARE,
                },
            )
            rows = cursor.fetchall()
        per_lane: dict[str, list[int]] = {}
        for row in rows:
            per_lane.setdefault(row[0], []).append(row[1])
        return _claimed_after_lane(rows, worker_id, self.alias), per_lane

    def claim_gated(
        self,
        worker_id: uuid.UUID,
        queues: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
        lane_limit: int | None = None,
    ) -> list[ClaimedJob]:
        if limit <= 0:
            return []
        params = self._gated_params(worker_id, queues, limit, lease_seconds)
        if lane_limit is not None:
            params["lane_limit"] = lane_limit
        first = self._run_gated(CLAIM_GATED, params)
        return first.claimed + self._follow_up(first, params, limit - len(first.claimed))

    def complete_and_claim_gated(
        self,
        completions: Sequence[Completion],
        worker_id: uuid.UUID,
        queues: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
        lane_limit: int,
        tasks: TaskFilter | None = None,
    ) -> tuple[set[int], list[ClaimedJob], bool]:
        """Acknowledge ``completions`` and claim up to ``limit`` jobs, half
        at most lane-free and ``lane_limit`` at most of lanes with a
        concurrency limit, in one statement; also whether due jobs with a
        lane are still waiting."""
        params = self._gated_params(worker_id, queues, limit, lease_seconds)
        params["fast_limit"] = limit - limit // 2
        params["lane_limit"] = lane_limit
        params["done_ids"] = [c.job.id for c in completions]
        params["done_tokens"] = [c.job.claim_token for c in completions]
        params["done_results"] = [c.result_json for c in completions]
        params.update(task_params(tasks))
        statement = (
            COMPLETE_AND_CLAIM_GATED_IN_QUEUES if queues else COMPLETE_AND_CLAIM_GATED_ALL_QUEUES
        )
        handoff = time.monotonic() < self._dry_scan_until
        params["handoff"] = handoff
        if handoff:
            params["lanes"] = 0
        first = self._run_gated(statement, params)
        if not handoff and first.dry:
            self._dry_scan_until = time.monotonic() + DRY_SCAN_PAUSE
        done = {row[2] for row in first.rows if row[0] == "done"}
        waiting = any(row[0] == "waiting" for row in first.rows)
        claimed = first.claimed
        fast = first.lane_free
        lanes = len(claimed) - fast
        more = dict(params, limit=limit - len(claimed), lane_limit=max(lane_limit - lanes, 0))
        claimed = claimed + self._follow_up(first, more, limit - len(claimed))
        if fast == params["fast_limit"] and len(claimed) < limit:
            # The lanes left slots unused and lane-free jobs may be waiting.
            claimed += self._claim_free(
                worker_id, queues, limit - len(claimed), lease_seconds, tasks
            )
        return done, claimed, waiting

    def _claim_free(
        self,
        worker_id: uuid.UUID,
        queues: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
        tasks: TaskFilter | None = None,
    ) -> list[ClaimedJob]:
        raise NotImplementedError  # PostgresEngine's

    def _gated_params(
        self, worker_id: uuid.UUID, queues: Sequence[str] | None, limit: int, lease_seconds: float
    ) -> dict[str, Any]:
        return {
            "lanes": LANES_PER_CLAIM,
            "limit": limit,
            "lane_limit": limit,
            "buckets": RATE_BUCKETS,
            "spare": HEAD_SPARE,
            "queues": list(queues) if queues else None,
            "worker_id": worker_id,
            "lease": lease_seconds,
        }

    def _follow_up(self, first: _Gated, params: dict[str, Any], room: int) -> list[ClaimedJob]:
        """After a gated statement that left ``room`` slots: wait for the
        lanes it skipped and try once more; then the ORM version for lanes
        with a circuit."""
        claimed: list[ClaimedJob] = []
        if room > 0 and first.skipped:
            claimed = self._claim_after_waiting(first.skipped, dict(params, limit=room))
        room -= len(claimed)
        if first.circuits and room > 0:
            # The ORM version claims every lane, circuits included (its own
            # transaction, lanes locked then counted: see engine.flow).
            claimed += FlowOperations.claim_gated(
                self, params["worker_id"], params["queues"], room, params["lease"]
            )
        return claimed

    def _claim_after_waiting(self, lanes: list[str], params: dict[str, Any]) -> list[ClaimedJob]:
        try:
            with transaction.atomic(using=self.alias):
                with self.connection.cursor() as cursor:
                    cursor.execute(LANE_LOCK_TIMEOUT)
                    cursor.execute(LOCK_LANES, [sorted(lanes)])
                return self._run_gated(CLAIM_GATED, params).claimed
        except OperationalError:  # lock_timeout: the lanes stay busy; the next claim tries
            logger.debug("gated claim: lanes %s still locked after waiting", lanes[:5])
            return []

    def _run_gated(self, statement: str, params: dict[str, Any]) -> _Gated:
        """One gated statement; moves the lane cursor. Only the worker's
        steady-state statement is prepared (pg.hot_cursor): CLAIM_GATED runs
        on the first claim, after a skip and for claim_jobs, and is planned
        each time like any other statement."""
        after = self._lane_cursor
        steady = statement is not CLAIM_GATED
        with hot_cursor(self.connection) if steady else self.connection.cursor() as cursor:
            cursor.execute(statement, dict(params, after=after))
            rows = cursor.fetchall()
        claims = [row for row in rows if row[0] == "claim"]
        handed = [row for row in rows if row[0] == "handoff"]
        claimed = _claimed_after_kind_and_lane(claims + handed, params["worker_id"], self.alias)
        lane_free = sum(1 for row in claims if row[1] is None)
        result = _Gated(rows, claimed, lane_free, [], False)
        if not params["lanes"]:
            return result  # no scan (DRY_SCAN_PAUSE): the cursor stays
        counts: dict[str, Any] = {row[0]: (row[1], row[2]) for row in rows}
        if "scan" not in counts:
            # The share was filled before every lane was visited: continue
            # from the last lane that gave a job, in scan order (it may have
            # more); the scan wrapped past the last lane if it took one
            # before the cursor.
            lanes = [row[1] for row in claims if row[1] is not None]
            if lanes:
                before = [lane for lane in lanes if lane < after]
                self._lane_cursor = max(before or lanes)
            return result
        last, scanned = counts["scan"]
        # Every scanned lane was visited: continue from the last one when
        # the scan stopped at its length, else from the first.
        self._lane_cursor = last if scanned >= LANES_PER_CLAIM and last else ""
        result.skipped = [row[1] for row in rows if row[0] == "skipped"]
        result.circuits = bool(counts["circuit"][1])
        others = counts.get("others", (None, 1))[1]
        result.dry = not others and not result.skipped and not result.circuits
        return result
