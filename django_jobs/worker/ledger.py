"""The worker's ledger: what became of every job it claimed, counted in one place.

Every end counts the same way, whoever wrote it: a completion written in a
batch, a failure (to retry or dead-lettered, a timeout or a crash included),
an atomic task's completion committed with its own writes, a run stopped by
its cancel, a claim lost on the way. ``ran`` drives ``--max-jobs`` and the
exit message. Jobs handed back unstarted are recorded too, but never ran.
"""

from __future__ import annotations

from datetime import datetime


class Ledger:
    """Counts of job ends. Only the worker loop's thread records, so no lock."""

    __slots__ = (
        "cancelled",
        "completed",
        "dead_lettered",
        "handed_back",
        "lost",
        "retried",
        "written",
    )

    def __init__(self) -> None:
        self.completed = 0  # completions written by the worker
        self.written = 0  # atomic tasks: completed with their own transaction
        self.retried = 0  # failed attempts with another one due
        self.dead_lettered = 0  # failed for good
        self.cancelled = 0  # stopped by an operator's cancel: CANCELLED
        self.lost = 0  # the claim was taken over: the outcome was not ours to write
        self.handed_back = 0  # released unstarted (prefetch, shutdown): never ran

    @property
    def ran(self) -> int:
        """Jobs that ran here to an end, whatever it was."""
        return (
            self.completed
            + self.written
            + self.retried
            + self.dead_lettered
            + self.cancelled
            + self.lost
        )

    def record_completions(self, count: int, *, lost: int = 0) -> None:
        """``count`` completions sent to the database, of which ``lost`` were refused."""
        self.completed += count - lost
        self.lost += lost

    def record_failure(self, retry_at: datetime | None, *, written: bool) -> None:
        """A failed attempt; ``written=False`` when the claim was lost before it was."""
        if not written:
            self.lost += 1
        elif retry_at is None:
            self.dead_lettered += 1
        else:
            self.retried += 1

    def record_cancelled(self, *, written: bool) -> None:
        """A run stopped by its cancel; ``written=False``: its outcome came first."""
        if written:
            self.cancelled += 1
        else:
            self.lost += 1

    def record_written(self) -> None:
        self.written += 1

    def record_lost(self) -> None:
        self.lost += 1

    def record_handed_back(self, count: int) -> None:
        self.handed_back += count

    def summary(self) -> str:
        """``7 job(s): 4 completed, 2 to retry, 1 dead-lettered; 3 handed back``."""
        parts = [
            f"{count} {what}"
            for count, what in (
                (self.completed, "completed"),
                (self.written, "completed atomically"),
                (self.retried, "to retry"),
                (self.dead_lettered, "dead-lettered"),
                (self.cancelled, "cancelled"),
                (self.lost, "claim lost"),
            )
            if count
        ]
        text = f"{self.ran} job(s)" + (f": {', '.join(parts)}" if parts else "")
        if self.handed_back:
            text += f"; {self.handed_back} handed back unstarted"
        return text
