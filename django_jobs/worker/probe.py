"""``runworker --health-port``: the worker's own liveness probe (JSON, 200/503).

The standard library's threading HTTP server: no dependency for a probe that
answers one question. Alive while the worker loop turned and a heartbeat
succeeded within LEASE_SECONDS (after that, other workers may take its jobs).
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from django_jobs.exceptions import WorkerStartError


class HealthServer:
    """``GET /`` answers 200 while ``alive()`` says so, else 503, with a JSON body."""

    def __init__(self, port: int, alive: Callable[[], dict[str, Any]], host: str = "") -> None:
        probe = alive

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                verdict = probe()
                body = json.dumps(verdict).encode()
                self.send_response(200 if verdict.get("alive") else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a probe every second is not worth a log line

        try:
            self.server = http.server.ThreadingHTTPServer((host or "0.0.0.0", port), Handler)
        except OSError as exc:
            raise WorkerStartError(f"--health-port {port}: cannot listen ({exc})") from exc
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="django_jobs-health", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():  # shutdown() waits for serve_forever to end
            self.server.shutdown()
        self.server.server_close()


def liveness(
    *, last_loop: Callable[[], float], last_beat: Callable[[], float | None], limit: float
) -> dict[str, Any]:
    """Alive while the loop turned and a heartbeat succeeded within ``limit`` seconds."""
    now = time.monotonic()
    loop_age = now - last_loop()
    beat = last_beat()
    beat_age = None if beat is None else now - beat
    alive = loop_age <= limit and beat_age is not None and beat_age <= limit
    return {"alive": alive, "loop_age": round(loop_age, 3), "heartbeat_age": beat_age}
