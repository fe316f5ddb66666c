"""``make test``'s two pytest passes, SQLite and PostgreSQL, run side by side.

    python tests/run_passes.py [PYTEST ARGS...]

The passes share nothing: SQLite's files are under tests/artifacts, the
PostgreSQL pass's databases are on the server, and the tests that stop
servers or brokers are marked ``postgres`` (the SQLite pass leaves them out).
Most of either pass waits on worker subprocesses, so on 2 cores the pair takes
about as long as the PostgreSQL pass alone. Each output line is prefixed with
its pass; the exit status is non-zero if either pass failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

PASSES = {
    "sqlite": ({"DJANGO_JOBS_TEST_DB": "sqlite"}, ["-m", "not postgres"]),
    "postgres": ({"DJANGO_JOBS_TEST_DB": "postgres"}, []),
}


def _relay(name: str, stream: object, lock: threading.Lock) -> None:
    for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
        with lock:
            sys.stdout.write(f"[{name}] {line}")
            sys.stdout.flush()


def main(extra: list[str]) -> int:
    lock = threading.Lock()
    started = time.monotonic()
    running: dict[str, tuple[subprocess.Popen[str], threading.Thread]] = {}
    for name, (env, args) in PASSES.items():
        environ = {**os.environ, "DJANGO_JOBS_TEST_SPLIT": "1", **env}
        if name == "sqlite":
            environ.pop("DATABASE_URL", None)  # the PostgreSQL pass's server
        proc = subprocess.Popen(
            # The slowest tests in the log: where the suite's time budget goes.
            [sys.executable, "-m", "pytest", "-q", "--durations=15", *args, *extra],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        relay = threading.Thread(target=_relay, args=(name, proc.stdout, lock), daemon=True)
        relay.start()
        running[name] = (proc, relay)
    codes = {}
    for name, (proc, relay) in running.items():
        codes[name] = proc.wait()
        relay.join()
        print(f"[{name}] exit {codes[name]} after {time.monotonic() - started:.0f}s", flush=True)
    failed = [name for name, code in codes.items() if code]
    print("both passes passed" if not failed else f"failed: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
