"""``manage.py jobs status``: counts, workers, failures and sections against real rows."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_jobs import queues
from django_jobs.cli.status_text import duration
from django_jobs.models import Circuit
from django_jobs.observability import sections
from django_jobs.status import CircuitState, JobStatus
from tests.admin.factories import make_dead_letter, make_job, make_scheduled, make_worker

pytestmark = pytest.mark.django_db(transaction=True)
ANSI = re.compile(r"\x1b\[")


class Terminal(io.StringIO):
    """Output that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def status(*args: str, stdout: io.StringIO | None = None) -> str:
    out = stdout or io.StringIO()
    call_command("jobs", "status", *args, stdout=out)
    return out.getvalue()


def status_json(*args: str) -> dict[str, Any]:
    return json.loads(status("--json", *args))


@pytest.fixture
def rows() -> dict[str, Any]:
    """Jobs in every state in two queues, a live and a stale worker, three dead letters."""
    now = timezone.now()
    live = make_worker(hostname="web-1", pid=101, queues=[], concurrency=4)
    stale = make_worker(
        hostname="web-2",
        pid=202,
        queues=["reports"],
        concurrency=2,
        last_heartbeat_at=now - timedelta(minutes=10),
    )
    for _ in range(3):
        make_job(run_after=now - timedelta(minutes=2))
    make_job(queue_name="reports", run_after=now - timedelta(seconds=30))
    make_scheduled()
    make_scheduled()
    make_job(JobStatus.RUNNING, worker_id=live.id)
    make_job(JobStatus.RUNNING, worker_id=live.id, queue_name="reports")
    make_job(JobStatus.SUCCESSFUL)
    letters = [
        make_dead_letter(make_job(JobStatus.FAILED), reason="attempts exhausted (2/2): boom 1"),
        make_dead_letter(
            make_job(JobStatus.FAILED, queue_name="reports"),
            reason="attempts exhausted (2/2): KeyError: 'customer'\nsecond line",
        ),
        make_dead_letter(make_job(JobStatus.FAILED), reason="lost worker", retried_at=now),
    ]
    return {"live": live, "stale": stale, "letters": letters}


def test_json_has_per_queue_counts_workers_and_failures(rows):
    doc = status_json()
    assert doc["version"] == 1 and doc["database"] == "default" and doc["queue_filter"] is None
    queues = {q["name"]: q for q in doc["queues"]}
    assert queues["default"] | {"oldest_ready_age_seconds": None} == {
        "name": "default",
        "ready": 3,
        "scheduled": 2,
        "running": 1,
        "failed": 2,
        "exact": True,
        "oldest_ready_age_seconds": None,
    }
    assert 115 <= queues["default"]["oldest_ready_age_seconds"] <= 180
    assert (queues["reports"]["ready"], queues["reports"]["running"]) == (1, 1)
    assert queues["reports"]["failed"] == 1
    workers = {w["pid"]: w for w in doc["workers"]}
    assert workers[101]["stale"] is False and workers[101]["running"] == 2
    assert workers[101]["heartbeat_age_seconds"] < 30
    assert workers[202]["stale"] is True and workers[202]["heartbeat_age_seconds"] >= 590
    assert workers[202]["queues"] == ["reports"] and workers[202]["running"] == 0
    assert doc["dead_letters"] == 2  # the retried one is not open
    failures = doc["latest_failures"]
    assert [f["id"] for f in failures] == [d.pk for d in reversed(rows["letters"])]
    assert failures[1]["error"].startswith("attempts exhausted (2/2): KeyError")
    assert failures[1]["queue"] == "reports" and failures[0]["retried"] is True
    assert doc["outbox"] == {"pending": 0, "failed": 0, "oldest_pending_age_seconds": None}
    assert doc["paused_queues"] == [] and doc["open_circuits"] == []


def test_queue_filter_keeps_its_queue_its_workers_and_its_failures(rows):
    doc = status_json("--queue", "reports")
    assert [q["name"] for q in doc["queues"]] == ["reports"]
    # web-1 serves every queue; web-2 serves reports.
    assert sorted(w["pid"] for w in doc["workers"]) == [101, 202]
    assert [f["queue"] for f in doc["latest_failures"]] == ["reports"]
    assert doc["queue_filter"] == ["reports"]
    other = status_json("--queue", "default")
    assert [w["pid"] for w in other["workers"]] == [101]


def test_the_table_is_aligned_and_marks_stale_workers_without_colours(rows):
    text = status()
    assert not ANSI.search(text)  # not a terminal: no colours
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("QUEUE "))
    queue_lines = lines[header : header + 3]
    # Right-aligned numbers: every row ends its READY column where the header does.
    end = queue_lines[0].index("READY") + len("READY")
    assert [line[:end].rstrip()[-1] for line in queue_lines[1:]] == ["3", "1"]
    assert all(line[end] == " " for line in queue_lines[1:])
    stale_line = next(line for line in lines if line.startswith("web-2:202"))
    assert stale_line.endswith("STALE") and "reports" in stale_line
    live_line = next(line for line in lines if line.startswith("web-1:101"))
    assert live_line.split()[-3:] == ["4", "2", "live"]  # concurrency, held, state
    assert "Workers (1 live, 1 stale)" in lines
    assert "Latest failures (2 dead letters not retried)" in lines
    error_line = next(line for line in lines if "KeyError" in line)
    assert "second line" not in text  # one line per failure
    assert "reports" in error_line
    assert "(retried) lost worker" in text
    assert lines[lines.index("Paused queues") + 1] == "none"
    assert lines[lines.index("Open circuits") + 1] == "none"


def test_a_terminal_gets_colours_for_stale_workers(rows):
    out = Terminal()
    call_command("jobs", "status", stdout=out, force_color=True)
    stale_line = next(line for line in out.getvalue().splitlines() if "web-2:202" in line)
    assert ANSI.search(stale_line)
    plain = Terminal()
    call_command("jobs", "status", stdout=plain, no_color=True)
    assert not ANSI.search(plain.getvalue())


@pytest.fixture
def provided_sections() -> Iterator[None]:
    saved = list(sections.SECTIONS)
    yield
    sections.SECTIONS[:] = saved


def test_sections_provided_by_other_features_are_shown(rows, provided_sections):
    aliases: list[str] = []

    def paused(alias: str) -> list[dict[str, Any]]:
        aliases.append(alias)
        return [
            {"queue": "reports", "paused_at": "2026-12-02T10:00:00+00:00"},
            {"queue": "default", "paused_at": "2026-12-02T11:00:00+00:00"},
        ]

    sections.provide("paused_queues", columns=("queue", "paused_at"), rows=paused)
    sections.provide(
        "open_circuits",
        columns=("circuit", "state", "reopens_in"),
        rows=lambda alias: [{"circuit": "partner-api", "state": "open", "reopens_in": None}],
    )
    doc = status_json()
    assert [row["queue"] for row in doc["paused_queues"]] == ["reports", "default"]
    assert doc["open_circuits"] == [{"circuit": "partner-api", "state": "open", "reopens_in": None}]
    assert aliases == ["default"]
    # Rows with a queue follow --queue.
    assert [r["queue"] for r in status_json("-q", "reports")["paused_queues"]] == ["reports"]
    lines = status().splitlines()
    at = lines.index("Paused queues")
    assert lines[at + 1].split() == ["QUEUE", "PAUSED", "AT"]
    assert lines[at + 2].split() == ["reports", "2026-12-02T10:00:00+00:00"]
    at = lines.index("Open circuits")
    assert lines[at + 2].split() == ["partner-api", "open", "-"]


def test_a_new_section_is_appended_and_bad_sections_are_refused(provided_sections):
    sections.provide("alerts_firing", columns=("rule",), rows=lambda alias: [{"rule": "r1"}])
    doc = status_json()
    assert doc["alerts_firing"] == [{"rule": "r1"}]
    assert "Alerts firing" in status().splitlines()
    with pytest.raises(ValueError, match="identifier"):
        sections.provide("not a key", columns=("x",), rows=lambda alias: [])
    with pytest.raises(ValueError, match="at least one column"):
        sections.provide("empty", columns=(), rows=lambda alias: [])


@override_settings(DJANGO_JOBS={"ADMIN_EXACT_COUNT_LIMIT": 5})
def test_counts_above_the_bound_are_estimates_on_postgresql_and_queries_stay_bounded():
    now = timezone.now()
    for _ in range(40):
        make_job(run_after=now - timedelta(seconds=1))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE django_jobs_job")
    with CaptureQueriesContext(connection) as queries:
        doc = status_json()
    (default,) = doc["queues"]
    if connection.vendor == "postgresql":
        assert default["exact"] is False and default["ready"] >= 6
        assert "≈" in status()
        # Every count reads at most bound + 1 rows, except two: a grouped count
        # run only after a bounded count showed the rows are few (here: no FAILED
        # job), and RUNNING jobs per worker (at most the workers' concurrency).
        counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
        unbounded = [sql for sql in counts if "LIMIT 6" not in sql]
        assert len(counts) > len(unbounded) == 2, unbounded
        assert 'AS "failed"' in unbounded[0]
        assert unbounded[1].endswith('WHERE "django_jobs_job"."status" = \'RUNNING\' GROUP BY 1')
    else:  # SQLite has no planner estimate: exact counts
        assert default["exact"] is True and default["ready"] == 40
    assert len(queries.captured_queries) <= 20


def test_bad_options_are_clear_errors():
    with pytest.raises(CommandError, match=r"--watch must be between 0\.2 and 3600, got 0"):
        call_command("jobs", "status", watch=0, stdout=io.StringIO())
    with pytest.raises(CommandError, match="--failures must be between 0 and 100"):
        call_command("jobs", "status", failures=500, stdout=io.StringIO())
    with pytest.raises(CommandError, match="--database 'nope' is not in DATABASES"):
        call_command("jobs", "--database", "nope", "status", stdout=io.StringIO())


def test_failures_zero_reads_no_dead_letters(rows):
    assert status_json("--failures", "0")["latest_failures"] == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.44, "0.4s"),
        (12.7, "12s"),
        (185, "3m05s"),
        (7380, "2h03m"),
        (352800, "4d02h"),
    ],
)
def test_durations_read_like_a_clock(seconds, text):
    assert duration(seconds) == text


def test_paused_queues_and_open_circuits_come_from_flow_control():
    queues.pause("reports")
    Circuit.objects.create(name="partner-api", state=CircuitState.OPEN, opened_at=timezone.now())
    Circuit.objects.create(name="mailer", state=CircuitState.CLOSED)
    doc = status_json()
    assert [row["queue"] for row in doc["paused_queues"]] == ["reports"]
    assert [(c["circuit"], c["state"]) for c in doc["open_circuits"]] == [("partner-api", "OPEN")]
    text = status()
    assert "partner-api" in text and "reports" in text
    queues.resume("reports")
    assert status_json()["paused_queues"] == []
