"""Run the demo: migrate the SQLite database, create an admin login, start
the web server and a worker, and enqueue demo jobs every few seconds.

    python example_project/rundemo.py [--port 8000] [--duration SECONDS]
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "manage.py"), *args]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    parser.add_argument("--every", type=float, default=15.0, help="seconds between demo batches")
    options = parser.parse_args()

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
    children = [
        subprocess.Popen(manage("runserver", f"127.0.0.1:{options.port}", "--noreload")),
        subprocess.Popen(manage("runworker", "--concurrency", "4")),
    ]
    print(
        f"\n  demo running: {url}/\n  admin:        {url}/admin/  (login: admin / {password})\n"
        "  Ctrl+C to stop.\n",
        flush=True,
    )
    started = time.monotonic()
    next_batch = started
    try:
        while options.duration is None or time.monotonic() - started < options.duration:
            if any(child.poll() is not None for child in children):
                print("a child process exited; stopping the demo", file=sys.stderr)
                return 1
            if time.monotonic() >= next_batch:
                jobs = enqueue_demo_batch()
                print(f"==> enqueued {len(jobs)} demo jobs", flush=True)
                next_batch = time.monotonic() + options.every
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
