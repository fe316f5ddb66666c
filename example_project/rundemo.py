"""Run the demo: migrate the SQLite database, create an admin login, start
the web server and a worker, and enqueue demo jobs every few seconds.

    python example_project/rundemo.py [--port 8000] [--duration SECONDS]

Ctrl+C or SIGTERM stops it: the demo sends SIGTERM to the server and the worker
(SIGKILL after a grace period) whatever signal disposition it inherited, so it
also stops cleanly as a shell's background job, where SIGINT is ignored. A child
that exits on its own stops the demo with exit code 1.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
GRACE = 15.0  # seconds children get to stop after SIGTERM, before SIGKILL


def manage(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "manage.py"), *args]


def stop_children(children: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM every child still running; SIGKILL those not gone after GRACE seconds."""
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + GRACE
    for name, child in children.items():
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop in {GRACE:g}s: killing it", file=sys.stderr)
            child.kill()
            child.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    parser.add_argument("--every", type=float, default=15.0, help="seconds between demo batches")
    options = parser.parse_args()

    # Our own handlers, not the inherited disposition: a background job starts with
    # SIGINT ignored, and SIGTERM would otherwise kill the demo and orphan its children.
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    sys.path.insert(0, str(ROOT))
    (ROOT / "var").mkdir(exist_ok=True)
    print("==> migrating the database", flush=True)
    subprocess.run(manage("migrate", "--no-input", "-v", "0"), check=True)

    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from example_project.demo.views import enqueue_demo_batch

    password = secrets.token_urlsafe(9)
    user_model = get_user_model()
    admin, _ = user_model.objects.get_or_create(
        username="admin", defaults={"is_staff": True, "is_superuser": True}
    )
    admin.is_staff = admin.is_superuser = True
    admin.set_password(password)
    admin.save()

    url = f"http://127.0.0.1:{options.port}"
    # Each child in a process group of its own: a Ctrl+C in the terminal reaches the
    # demo only, and the demo stops each child with exactly one SIGTERM (a second
    # one would make the worker exit at once instead of finishing its jobs).
    children = {
        "runserver": subprocess.Popen(
            manage("runserver", f"127.0.0.1:{options.port}", "--noreload"), process_group=0
        ),
        "runworker": subprocess.Popen(
            manage("runworker", "--concurrency", "4", "--shutdown-timeout", "10"),
            process_group=0,
        ),
    }
    print(
        f"\n  demo running: {url}/\n  admin:        {url}/admin/  (login: admin / {password})\n"
        "  Ctrl+C to stop.\n",
        flush=True,
    )
    started = time.monotonic()
    next_batch = started
    code = 0
    try:
        while not stop.is_set():
            if options.duration is not None and time.monotonic() - started >= options.duration:
                break
            exited = {name: child for name, child in children.items() if child.poll() is not None}
            if exited:
                for name, child in exited.items():
                    print(
                        f"{name} exited with code {child.returncode}; stopping the demo",
                        file=sys.stderr,
                    )
                code = 1
                break
            if time.monotonic() >= next_batch:
                jobs = enqueue_demo_batch()
                print(f"==> enqueued {len(jobs)} demo jobs", flush=True)
                next_batch = time.monotonic() + options.every
            stop.wait(0.5)
    finally:
        stop_children(children)
    print("demo stopped", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
