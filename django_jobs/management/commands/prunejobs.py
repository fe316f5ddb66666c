"""``manage.py prunejobs``: delete old finished jobs in batches. Hands off to JobPruner."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_jobs.management.commands._options import (
    MAX_BATCH,
    Number,
    check_options,
    schema_errors,
)
from django_jobs.pruning import JobPruner, PruneProgress, parse_duration

NUMBERS = {"batch_size": Number(int, 1, MAX_BATCH)}


class Command(BaseCommand):
    help = (
        "Delete finished jobs (successful, failed, cancelled) older than the retention, "
        "in bounded batches. Dead letters are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            metavar="DURATION",
            help="Age of the newest job to delete: seconds or 90s/15m/12h/7d/2w "
            "(default: DJANGO_JOBS['FINISHED_JOB_RETENTION']).",
        )
        parser.add_argument(
            "--batch-size",
            type=NUMBERS["batch_size"],
            default=None,
            help=f"Jobs deleted per statement, 1 to {MAX_BATCH} "
            "(default: DJANGO_JOBS['PRUNE_BATCH_SIZE']).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )
        parser.add_argument(
            "--vacuum",
            action="store_true",
            help="After deleting, VACUUM (ANALYZE) the jobs table (PostgreSQL) so the "
            "space is reusable at once instead of when autovacuum gets to it.",
        )
        parser.add_argument("--database", default="default", help="Database alias to use.")

    def handle(self, *args: Any, **options: Any) -> None:
        check_options(options, NUMBERS)
        with schema_errors(options["database"]):
            self._prune(options)

    def _prune(self, options: dict[str, Any]) -> None:
        self._verbosity = int(options["verbosity"])
        self._last_report = 0.0
        try:
            older_than = parse_duration(options["older_than"]) if options["older_than"] else None
            pruner = JobPruner(options["database"], options["batch_size"])
            before = pruner.cutoff(older_than)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if before is None:
            raise CommandError(
                "FINISHED_JOB_RETENTION is None (keep forever): pass --older-than to prune anyway"
            )
        if options["dry_run"]:
            count = pruner.count(before)
            self.stdout.write(
                f"{count} finished job(s) finished before {before:%Y-%m-%d %H:%M:%S %Z} "
                "would be deleted (dry run)."
            )
            return
        self.stdout.write(
            f"Deleting finished jobs finished before {before:%Y-%m-%d %H:%M:%S %Z} "
            f"in batches of {pruner.batch_size}..."
        )
        progress = pruner.prune(before, on_batch=self._report)
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted {progress.deleted} job(s) in {progress.batches} batch(es), "
                f"{progress.elapsed:.1f}s."
            )
        )
        if options["vacuum"]:
            self._vacuum(options["database"])

    def _vacuum(self, database: str) -> None:
        took = JobPruner(database).vacuum()
        if took is None:
            self.stdout.write("Nothing to vacuum on this database: deleted rows' space is reused.")
        else:
            self.stdout.write(f"Vacuumed the jobs table in {took:.1f}s.")

    def _report(self, progress: PruneProgress) -> None:
        # One line a second (every batch with -v 2): millions of rows stay readable.
        if self._verbosity < 1:
            return
        if self._verbosity == 1 and progress.elapsed - self._last_report < 1.0:
            return
        self._last_report = progress.elapsed
        self.stdout.write(
            f"  {progress.deleted} deleted ({progress.batches} batches, {progress.rate:.0f}/s)"
        )
