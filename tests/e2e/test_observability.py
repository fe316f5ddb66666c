"""Metrics and health against real workers: scrapes parsed with prometheus_client."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections import defaultdict

import pytest
from django.db import connections
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from django_jobs.models import Job, Worker
from django_jobs.observability.snapshot import clear_cache
from django_jobs.status import JobStatus
from tests.conftest import wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "jobs"])

TOKEN = "t" * 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name].append((sample.labels, sample.value))
    return found


def by_status(found: dict[str, list[tuple[dict[str, str], float]]], name: str) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for labels, value in found.get(name, []):
        totals[labels["status"]] += value
    return dict(totals)


def scrape_worker(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return samples(response.read().decode())


def scrape_view(client: Client) -> dict[str, list[tuple[dict[str, str], float]]]:
    clear_cache()
    response = client.get("/jobs/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    return samples(response.content.decode())


@pytest.mark.parametrize("pool", ["thread", "process"])
@override_settings(DJANGO_JOBS={"METRICS_TOKEN": TOKEN, "METRICS_CACHE_SECONDS": 0})
def test_scrapes_during_a_drain_agree_with_the_database(start_worker, pool):
    tasks.noop.enqueue_many([() for _ in range(150)])
    for _ in range(4):
        tasks.always_fails.enqueue()  # max_attempts=2: one retry, then a dead letter
    port, health_port = free_port(), free_port()
    start_worker(
        "--pool",
        pool,
        "--concurrency",
        "2",
        "--metrics-port",
        str(port),
        "--health-port",
        str(health_port),
    )
    client = Client()
    scraped_while_running = 0

    def finished() -> bool:
        nonlocal scraped_while_running
        try:
            scrape_worker(port)  # parses while jobs run
            scraped_while_running += 1
        except OSError:
            pass  # not listening yet
        scrape_view(client)
        return Job.objects.filter(status__in=[JobStatus.READY, JobStatus.RUNNING]).count() == 0

    wait_until(finished, timeout=90, interval=0.2, message="the drain")
    assert scraped_while_running > 0
    successful = Job.objects.filter(status=JobStatus.SUCCESSFUL).count()
    failed = Job.objects.filter(status=JobStatus.FAILED).count()
    assert (successful, failed) == (150, 4)

    # The worker's counters: outcomes are recorded after the database write is
    # queued, so wait for the last ones to be counted (bounded).
    def worker_counts() -> dict[str, float]:
        return by_status(scrape_worker(port), "django_jobs_jobs_finished_total")

    counts = wait_until(lambda: (c := worker_counts()).get("failed") == 4 and c, timeout=10)
    assert counts == {"successful": 150, "retried": 4, "failed": 4}
    histogram = by_status(scrape_worker(port), "django_jobs_job_duration_seconds_count")
    assert histogram == counts

    gauges = scrape_view(client)
    jobs = {(labels["queue"], labels["status"]): v for labels, v in gauges["django_jobs_jobs"]}
    assert jobs[("default", "failed")] == failed
    assert jobs[("default", "ready")] == 0 and jobs[("default", "running")] == 0
    assert gauges["django_jobs_dead_letters"] == [({}, 4.0)]
    assert gauges["django_jobs_workers"] == [({}, 1.0)]

    with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/", timeout=5) as response:
        assert response.status == 200
    clear_cache()
    health = client.get("/jobs/health")
    assert health.status_code == 200, health.json()
    assert health.json()["checks"]["workers"]["live"] == 1


@override_settings(DJANGO_JOBS={"METRICS_TOKEN": TOKEN})
def test_metrics_need_staff_or_the_token():
    clear_cache()
    client = Client()
    assert client.get("/jobs/metrics").status_code == 401
    wrong = client.get("/jobs/metrics", HTTP_AUTHORIZATION="Bearer " + "x" * 40)
    assert wrong.status_code == 401
    assert client.get("/jobs/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_health_is_503_when_the_database_is_unreachable():
    clear_cache()
    conn = connections["jobs"]
    saved = dict(conn.settings_dict)
    conn.close()
    if conn.vendor == "postgresql":
        conn.settings_dict.update(HOST="127.0.0.1", PORT=str(free_port()))  # nothing listens
    else:
        conn.settings_dict["NAME"] = "/nonexistent-dir/jobs.sqlite3"
    try:
        response = Client().get("/jobs/health?database=jobs")
    finally:
        conn.close()
        conn.settings_dict.clear()
        conn.settings_dict.update(saved)
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {
        "ok": False,
        "error": "OperationalError",
        "message": "the database 'jobs' did not answer",
    }


def test_health_is_503_without_a_live_worker():
    clear_cache()
    response = Client().get("/jobs/health")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        **response.json()["checks"],
        "database": {"ok": True},
        "workers": {"ok": False, "live": 0, "stale": 0},
    }


@pytest.mark.parametrize("option", ["--metrics-port", "--health-port"])
def test_a_port_in_use_stops_the_worker_at_start(start_worker, option):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = start_worker(option, str(port))
        assert proc.wait(60) != 0
        output = proc.output()
        assert f"{option} {port}: cannot listen" in output
        assert "Address already in use" in output
        assert "Traceback" not in output  # a CommandError, not a crash
    assert not urllib_ok(port)
    assert not Worker.objects.exists()  # checked before registering: nothing left behind


def urllib_ok(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1)
    except (urllib.error.URLError, OSError):
        return False
    return True
