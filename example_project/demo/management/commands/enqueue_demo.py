from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from example_project.demo.views import enqueue_demo_batch


class Command(BaseCommand):
    help = "Enqueue a batch of demo jobs (successes, a retry, a dead letter, a slow report)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--size", type=int, default=5, help="Welcome emails in the batch.")

    def handle(self, *args: Any, **options: Any) -> None:
        jobs = enqueue_demo_batch(options["size"])
        self.stdout.write(f"enqueued {len(jobs)} jobs: ids {jobs[0].pk}..{jobs[-1].pk}")
