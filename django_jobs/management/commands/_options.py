"""Option checks shared by runworker, runrelay and prunejobs (not a command: the name
starts with ``_``).

Numbers are checked by :class:`Number`, an argparse ``type=``; ``call_command()``
passes keyword values past argparse, so each command runs the same checks again
on what it got (:func:`check_options`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
from collections.abc import Iterator, Mapping
from typing import Any

from django.apps import apps
from django.core.management.base import CommandError
from django.db import DatabaseError, ProgrammingError, connections

from django_jobs.worker.rejections import PREPARED_STATEMENT_HINT, prepared_statement_lost

# Threads per worker process: beyond about a thousand, a worker spends its time
# switching threads (and hits the OS thread limit: "can't start new thread").
MAX_THREADS = 1000
# Child processes per worker (--pool process): each is a full Django process.
MAX_PROCESSES = 256
MAX_BATCH = 10_000  # rows claimed / dispatched / deleted per statement
MAX_SECONDS = 86_400.0  # poll intervals and timeouts: a day at most


class Number:
    """A bounded int or float option: ``type=Number(int, 1, 1000)`` refuses 0 and 50000
    with "must be between 1 and 1000, got 50000"; floats must be finite."""

    def __init__(
        self,
        kind: type[int] | type[float],
        minimum: float,
        maximum: float | None = None,
        *,
        above_minimum: bool = False,
        unit: str = "",
    ) -> None:
        self.kind = kind
        self.minimum = minimum
        self.maximum = maximum
        self.above_minimum = above_minimum  # the minimum itself is refused (0 < x)
        self.unit = unit  # named in "must be a positive number of MiB"

    def __call__(self, value: str | int | float) -> int | float:
        try:
            number = self.kind(value)
        except (TypeError, ValueError):
            article = "an integer" if self.kind is int else "a number"
            raise argparse.ArgumentTypeError(f"must be {article}, got {value!r}") from None
        if not math.isfinite(number):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {value}")
        if self.kind is int and isinstance(value, float) and not value.is_integer():
            raise argparse.ArgumentTypeError(f"must be an integer, got {value}")
        too_small = number <= self.minimum if self.above_minimum else number < self.minimum
        if too_small or (self.maximum is not None and number > self.maximum):
            raise argparse.ArgumentTypeError(f"{self.bounds()}, got {value}")
        return number

    def bounds(self) -> str:
        low = f"{self.minimum:g}"
        if self.above_minimum and self.minimum == 0 and self.maximum is None:
            return "must be a positive number" + (f" of {self.unit}" if self.unit else "")
        if self.above_minimum:
            high = f" and at most {self.maximum:g}" if self.maximum is not None else ""
            return f"must be more than {low}{high}"
        if self.maximum is None:
            return f"must be at least {low}"
        return f"must be between {low} and {self.maximum:g}"


def option_name(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def check_options(options: dict[str, Any], numbers: Mapping[str, Number]) -> None:
    """Check (and convert) numeric options and ``--database``; CommandError names the option."""
    for dest, number in numbers.items():
        if options.get(dest) is None:
            continue
        try:
            options[dest] = number(options[dest])
        except argparse.ArgumentTypeError as exc:
            raise CommandError(f"{option_name(dest)} {exc}") from None
    alias = options.get("database")
    if alias is not None and alias not in connections:
        known = ", ".join(repr(name) for name in connections)
        raise CommandError(f"--database {alias!r} is not in DATABASES (known: {known})")


def missing_tables(alias: str) -> list[str]:
    """django_jobs tables absent from the database ``alias`` (the schema is not migrated)."""
    wanted = [model._meta.db_table for model in apps.get_app_config("django_jobs").get_models()]
    try:
        present = set(connections[alias].introspection.table_names())
    except DatabaseError:
        return []  # unreachable: an outage, not a schema problem
    return [table for table in wanted if table not in present]


@contextlib.contextmanager
def schema_errors(alias: str) -> Iterator[None]:
    """Turn "no such table" into a CommandError saying to migrate, instead of a traceback.

    PostgreSQL rejects such statements with a ProgrammingError; SQLite raises an
    OperationalError, as for an outage, so the tables are looked up to tell them apart.
    """
    try:
        yield
    except DatabaseError as exc:
        if prepared_statement_lost(exc):
            raise CommandError(
                f"the database {alias!r} rejects django_jobs' statements "
                f"({str(exc).strip()}): {PREPARED_STATEMENT_HINT}."
            ) from exc
        if not isinstance(exc, ProgrammingError) and not missing_tables(alias):
            raise
        raise CommandError(
            f"the database {alias!r} rejects django_jobs' statements "
            f"({str(exc).strip()}): is the schema migrated? Run `manage.py migrate`."
        ) from exc


def configure_logging(verbosity: int) -> None:
    """Show django_jobs logs on stderr unless the project's LOGGING already does.

    Any handler on the django_jobs logger or its ancestors (the root logger) means
    the project chose where logs go: adding ours would print every line twice.
    Django's default LOGGING configures only the ``django`` logger.
    """
    logger = logging.getLogger("django_jobs")
    if logger.hasHandlers():
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel({0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG))
