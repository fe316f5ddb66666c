"""A real Prometheus scrapes a real worker and ``jobs/metrics``; the dashboard's
queries run against it and return data, and its numbers agree with the database.

Debian's ``prometheus`` (``make prometheus-deps``) is started on a free port
with its own configuration and storage in a temporary directory, scraping
every second. Missing Prometheus fails under ``CI=true`` and skips elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from django_jobs.models import Job
from django_jobs.observability.snapshot import clear_cache
from django_jobs.status import JobStatus
from tests.conftest import wait_until
from tests.e2e.test_observability import free_port
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "jobs"])

TOKEN = "p" * 40
DASHBOARD = Path(__file__).resolve().parents[2] / "django_jobs/contrib/grafana/django_jobs.json"
# Grafana's variables, as Grafana would substitute them.
VARIABLES = {"$__rate_interval": "30s", "$queue": ".*", "$task": ".*"}
# Only with FINISHED_JOB_RETENTION set (not here): no series is right.
OPTIONAL = {"max(django_jobs_prune_backlog)"}


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        message = "prometheus not found (make prometheus-deps: apt-get install prometheus)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message)
        pytest.skip(message)
    return found


class Prometheus:
    def __init__(self, port: int) -> None:
        self.port = port

    def get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.get("/api/v1/query", query=expr)
        assert answer["status"] == "success", (expr, answer)
        return list(answer["data"]["result"])

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            return False


@pytest.fixture
def prometheus(tmp_path: Path, live_server: Any) -> Iterator[tuple[Prometheus, int]]:
    """Prometheus scraping ``live_server``'s jobs/metrics and a worker port (returned)."""
    binary = prometheus_binary()
    worker_port, port = free_port(), free_port()
    server = live_server.url.removeprefix("http://")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "django_jobs_database",
                "metrics_path": "/jobs/metrics",
                "authorization": {"type": "Bearer", "credentials": TOKEN},
                "static_configs": [{"targets": [server]}],
            },
            {
                "job_name": "django_jobs_workers",
                "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}],
            },
        ],
    }
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        client = Prometheus(port)
        wait_until(client.ready, timeout=60, interval=0.2, message="Prometheus ready")
        yield client, worker_port
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def dashboard_expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in VARIABLES.items():
                expr = expr.replace(variable, value)
            exprs.append(expr)
    return exprs


@override_settings(DJANGO_JOBS={"METRICS_TOKEN": TOKEN, "METRICS_CACHE_SECONDS": 0})
def test_dashboard_queries_return_data_from_a_real_prometheus(prometheus, start_worker):
    client, worker_port = prometheus
    clear_cache()
    tasks.noop.enqueue_many([() for _ in range(60)])
    for _ in range(3):
        tasks.always_fails.enqueue()  # max_attempts=2: a retry, then a dead letter
    tasks.sleep_for.using(queue_name="reports").enqueue(120)  # keeps one RUNNING
    start_worker("--metrics-port", str(worker_port), "--concurrency", "2")
    wait_until(
        lambda: (
            Job.objects.filter(status=JobStatus.FAILED).count() == 3
            and Job.objects.filter(status=JobStatus.SUCCESSFUL).count() == 60
        ),
        timeout=90,
        message="the drain",
    )

    def scraped() -> bool:
        ok = client.query('sum(django_jobs_jobs_finished_total{status="failed"})')
        dead = client.query("django_jobs_dead_letters")
        return bool(ok and float(ok[0]["value"][1]) == 3 and dead and dead[0]["value"][1] == "3")

    wait_until(scraped, timeout=30, interval=0.5, message="Prometheus to scrape the drain")
    targets = client.get("/api/v1/targets")["data"]["activeTargets"]
    assert sorted(t["health"] for t in targets) == ["up", "up"], targets

    def value(expr: str) -> float:
        (series,) = client.query(expr)
        return float(series["value"][1])

    # Prometheus' numbers agree with the database.
    assert value('sum(django_jobs_jobs_finished_total{status="successful"})') == 60
    assert value('sum(django_jobs_jobs_finished_total{status="retried"})') == 3
    assert value('django_jobs_jobs{queue="default", status="failed"}') == 3
    assert value('django_jobs_jobs{queue="reports", status="running"}') == 1
    assert value("django_jobs_workers") == 1
    wait_until(
        lambda: value("sum(django_jobs_job_duration_seconds_count)") == 66,
        timeout=10,
        message="every attempt in the histogram",
    )
    # rate() needs two scrapes of a series inside its window.
    wait_until(
        lambda: client.query("sum(rate(django_jobs_job_duration_seconds_count[30s]))"),
        timeout=30,
        interval=0.5,
        message="a second scrape of the worker",
    )
    # Every query of the dashboard parses and returns series from real data.
    empty = [expr for expr in dashboard_expressions() if not client.query(expr)]
    assert set(empty) <= OPTIONAL, empty
