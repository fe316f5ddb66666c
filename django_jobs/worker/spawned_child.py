"""Entry point of a spawned process-pool child (SQLite: no fork)::

    python -m django_jobs.worker.spawned_child FD PARENT_PID MAX_TASKS MAX_MEMORY_BYTES

(0: no limit). A module of its own because Django must be set up before the
child loop (``process_child``) is imported: it runs jobs through the engine,
and the engine imports the models.
"""

from __future__ import annotations

import sys
from multiprocessing.connection import Connection

import django


def main(argv: list[str]) -> int:
    django.setup()
    # After setup(): process_child imports the engine, which imports the models.
    from django_jobs.worker.process_child import child_main

    fd, parent_pid, max_tasks, max_memory = (int(arg) for arg in argv)
    return child_main(Connection(fd), parent_pid, max_tasks or None, max_memory or None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
