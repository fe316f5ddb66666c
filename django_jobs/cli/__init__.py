"""Subcommands of ``manage.py jobs``, one module per concern.

Each module exposes :class:`Subcommand` instances; ``SUBCOMMANDS`` in
:mod:`django_jobs.management.commands.jobs` lists them. A subcommand adds its
own arguments and handles the parsed options; the management command stays a
thin dispatcher (``jobs pause QUEUE``, ``jobs cancel ID``, ``jobs status``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

__all__ = ["Subcommand"]


@dataclass(frozen=True)
class Subcommand:
    """One ``manage.py jobs NAME`` subcommand."""

    name: str
    help: str
    add_arguments: Callable[[CommandParser], None]
    # Called with the running command (for stdout/stderr/style) and its options.
    handle: Callable[[BaseCommand, dict[str, Any]], None]
