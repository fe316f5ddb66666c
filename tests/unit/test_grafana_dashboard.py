"""The Grafana dashboard only queries what our exposition really emits.

Both registries are the real ones (the database collector's families from a
snapshot, the worker's counters and histogram after one observation), rendered
by prometheus-client and parsed back: every metric a panel names, and every
label it filters or groups by, must be in that output. promtool (Prometheus'
own parser, Debian's ``prometheus`` package) then checks each expression's syntax.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from django_jobs.observability.metrics import families
from django_jobs.observability.snapshot import QueueState, Snapshot, WorkerState
from django_jobs.observability.worker_metrics import WorkerMetrics
from django_jobs.rows import ClaimedJob, Completion

DASHBOARD = Path(__file__).resolve().parents[2] / "django_jobs/contrib/grafana/django_jobs.json"
METRIC = re.compile(r"\bdjango_jobs_[a-z0-9_]+\b")
MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*\"")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
# Grafana's variables, as Grafana substitutes them before Prometheus sees a query.
VARIABLES = {"$__rate_interval": "5m", "$queue": ".*", "$task": ".*"}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def expressions() -> list[str]:
    found = []
    for panel in dashboard()["panels"]:
        found.extend(target["expr"] for target in panel.get("targets", []))
    return found


def emitted() -> dict[str, set[str]]:
    """Sample name -> label names, from both real registries' text exposition."""
    now = datetime.now(UTC)
    snapshot = Snapshot(
        taken_at=now,
        queues=[QueueState("default", 3, 1, 2, 1, True, 4.5)],
        workers=[WorkerState(uuid.uuid4(), "h", 1, "thread", 2, [], 1.0, 2, False)],
        dead_letters=1,
        outbox={"PENDING": 2, "FAILED": 0},
        outbox_oldest_pending_age=3.0,
        prune_backlog=0,
    )

    class Registry:
        def collect(self):  # the collector interface generate_latest reads
            return families(snapshot)

    metrics = WorkerMetrics()
    job = ClaimedJob(
        id=1,
        task_name="tests.testapp.tasks.noop",
        queue_name="default",
        priority=0,
        args=[],
        kwargs={},
        attempts=1,
        max_attempts=1,
        timeout=10,
        claim_token=uuid.uuid4(),
        worker_id=uuid.uuid4(),
        run_after=now,
        enqueued_at=now,
        started_at=now,
    )
    metrics.observe(job, Completion(job, "null"), 0.02)
    names: dict[str, set[str]] = defaultdict(set)
    for text in (generate_latest(Registry()), generate_latest(metrics.registry)):  # type: ignore[arg-type]
        for family in text_string_to_metric_families(text.decode()):
            for sample in family.samples:
                names[sample.name] |= set(sample.labels)
    return names


def test_the_dashboard_is_a_grafana_dashboard_with_unique_panels():
    board = dashboard()
    assert board["uid"] == "django-jobs" and board["schemaVersion"] >= 36
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"
    variables = {v["name"] for v in board["templating"]["list"]}
    assert variables == {"datasource", "queue", "task"}


def test_every_expression_uses_only_emitted_metrics_and_labels():
    names = emitted()
    used = set()
    for expr in expressions():
        metrics = set(METRIC.findall(expr))
        assert metrics, f"no django_jobs metric in {expr!r}"
        unknown = metrics - set(names)
        assert not unknown, f"{expr!r} uses metrics never emitted: {sorted(unknown)}"
        labels = set().union(*(names[m] for m in metrics)) | {"le"}
        filtered = set(MATCHER.findall(expr))
        grouped = {x.strip() for group in GROUPING.findall(expr) for x in group.split(",")}
        assert (filtered | grouped) <= labels, (expr, (filtered | grouped) - labels)
        used |= metrics
    # The dashboard covers the DESIGN.md names (and the histogram as quantiles).
    assert {
        "django_jobs_jobs",
        "django_jobs_oldest_ready_age_seconds",
        "django_jobs_dead_letters",
        "django_jobs_workers",
        "django_jobs_outbox_events",
        "django_jobs_job_duration_seconds_bucket",
        "django_jobs_jobs_finished_total",
    } <= used
    assert any("histogram_quantile(0.95" in e for e in expressions())
    for variable in dashboard()["templating"]["list"][1:]:
        (metric,) = METRIC.findall(variable["definition"])
        label = variable["definition"].rstrip(")").rpartition(",")[2].strip()
        assert label in names[metric], variable["definition"]


def test_promtool_parses_every_expression(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        message = "promtool not found (apt-get install prometheus)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message)
        pytest.skip(message)
    rules = []
    for index, expr in enumerate(expressions()):
        for variable, value in VARIABLES.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"django_jobs:dashboard:{index}", "expr": expr})
    path = tmp_path / "rules.yml"
    # JSON is YAML: one recording rule per panel query.
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout
