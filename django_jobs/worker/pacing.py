"""How much the worker claims, and when it claims again.

A claim asks for the free slots plus a prefetch of about PREFETCH_WINDOW
seconds of work while jobs are quick (threads then never wait for a round
trip), nothing ahead once jobs are slow or after a hand-back. Jobs in lanes
with a concurrency limit get only half the prefetch ahead, so that one
worker claiming ahead does not hold every lane while another finds them all
full. After a claim that got fewer jobs than it asked for, jobs quick enough
to finish within GATHER_WINDOW are waited for, so that one statement writes
the whole batch.
"""

from __future__ import annotations

import time

from django_jobs.worker import async_pool
from django_jobs.worker.executor import Executor

# Prefetch keeps about this many seconds of work waiting in the pool's backlog
# (from the recent mean run time): enough to keep threads busy through a
# database round trip when jobs are quick, nothing when they are slow.
PREFETCH_WINDOW = 0.05
# After a claim that got fewer jobs than it asked for (a lane is full, the
# queue ran low), the loop waits for jobs this quick to finish, up to this
# many seconds, before writing their outcomes: one statement then carries
# the whole batch, where waking at the first finished job splits it in two.
# Measured (bench/flow_control.py, 100 lanes of limit 1 on 2 workers): 107
# statements per worker for 5,000 jobs instead of 190.
GATHER_WINDOW = 0.002
GATHER_POLL = 0.0002


class ClaimPacing:
    """The claim sizes of one worker's loop (see the module docstring)."""

    def __init__(self, executor: Executor, concurrency: int, prefetch: int, batch_size: int):
        self.executor = executor
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.batch_size = batch_size
        self.prefetch_paused = False  # after a hand-back, until a slot frees up

    def limits(self, room: int | None = None) -> tuple[int, int]:
        """How many jobs to claim now (at most ``room``), and how many of
        them may be in lanes with a concurrency limit."""
        free, ahead = async_pool.free_slots(self.executor), self.prefetch_budget()
        limit = min(free + ahead, self.batch_size)
        if room is not None:
            limit = min(limit, room)
        limit = max(limit, 0)
        # The pool's own free slots: async_pool.free_slots adds the loop's
        # claimable room, which is there whether or not async tasks exist.
        return limit, max(min(self.executor.free_slots() + ahead // 2, limit), 0)

    def prefetch_budget(self) -> int:
        """Jobs to claim beyond the free slots: about PREFETCH_WINDOW seconds of work."""
        if self.prefetch_paused:
            if self.executor.free_slots() <= 0:
                return 0  # the slow jobs that made us hand back still hold every slot
            self.prefetch_paused = False
        mean = self.executor.mean_runtime()
        if not self.prefetch or mean is None:
            return 0
        return min(self.prefetch, int(self.concurrency * PREFETCH_WINDOW / max(mean, 1e-6)))

    def gather_quick_batch(self) -> bool:
        """Wait for the jobs in hand to finish if they are expected to within
        GATHER_WINDOW (at most that long); whether it waited."""
        mean = self.executor.mean_runtime()
        held = len(self.executor.running_jobs())
        if mean is None or not held or mean * held / self.concurrency > GATHER_WINDOW:
            return False
        deadline = time.monotonic() + GATHER_WINDOW
        while self.executor.running_jobs() and time.monotonic() < deadline:
            time.sleep(GATHER_POLL)
        return True
