"""Counting without COUNT(*) over big tables, skip scans, throughput buckets, charts."""

from __future__ import annotations

import re
from datetime import UTC, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_jobs import counts, stats
from django_jobs.admin import charts, display
from django_jobs.models import Job
from django_jobs.status import JobStatus
from tests.admin.factories import make_job

JOBS = reverse("admin:django_jobs_job_changelist")


@pytest.fixture
def small_limit(settings):
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "ADMIN_EXACT_COUNT_LIMIT": 5}


def bulk_jobs(n: int, **fields) -> None:
    now = timezone.now()
    Job.objects.bulk_create(
        Job(task_name="t.x", run_after=now, enqueued_at=now, **fields) for _ in range(n)
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0123, "12 ms"), (4.25, "4.2 s"), (42, "42 s"), (180, "3 min"), (3900, "1 h 5 min"),
     (36000, "10 h"), (200000, "2 d 7 h"), (-90, "1 min")],
)  # fmt: skip
def test_human_seconds(seconds, text):
    assert display.human_seconds(seconds) == text


def test_row_count_text():
    assert str(counts.RowCount(1234)) == "1,234"
    assert str(counts.RowCount(1_000_000, exact=False)) == "≈1,000,000"
    assert counts.total([counts.RowCount(1), counts.RowCount(2, exact=False)]) == counts.RowCount(
        3, exact=False
    )


@pytest.mark.parametrize(("value", "top"), [(0, 4), (3, 4), (7, 10), (11, 20), (180, 200),
                                            (230, 250), (4100, 5000)])  # fmt: skip
def test_nice_axis_max(value, top):
    assert charts.nice_max(value) == top


def test_bar_chart_geometry():
    start = timezone.now().replace(second=0, microsecond=0)
    buckets = [
        stats.Bucket(start, succeeded=30, failed=10),
        stats.Bucket(start + timedelta(minutes=1)),
        stats.Bucket(start + timedelta(minutes=2), succeeded=5),
    ]
    chart = charts.bar_chart("t", buckets, "%H:%M", 2)
    full, empty, small = chart.bars
    assert full.failed_height == pytest.approx(3 * full.ok_height / 9)  # 10 of 40 vs 30 of 40
    assert full.ok_y + full.ok_height == pytest.approx(full.failed_y)  # stacked, failed below
    assert full.failed_y + full.failed_height == chart.plot_bottom
    assert empty.ok_height == empty.failed_height == 0
    assert small.ok_height == pytest.approx(full.ok_height / 6)
    assert [t.label for t in chart.y_ticks] == ["0", "25", "50"]
    assert len(chart.x_ticks) == 2 and (chart.succeeded, chart.failed) == (35, 10)
    assert "30 succeeded, 10 failed" in full.title


@pytest.mark.django_db
def test_exact_counts_below_the_limit(small_limit):
    bulk_jobs(4)
    assert counts.count_rows(Job.objects.all()) == counts.RowCount(4)
    assert counts.count_rows(Job.objects.filter(status="READY")) == counts.RowCount(4)


@pytest.mark.django_db
def test_above_the_limit_sqlite_stays_exact_and_postgres_estimates(small_limit):
    bulk_jobs(12)
    rows = counts.count_rows(Job.objects.all())
    if connection.vendor == "postgresql":
        assert not rows.exact and rows.value >= 6  # at least what the bounded count saw
    else:
        assert rows == counts.RowCount(12)


@pytest.mark.postgres
@pytest.mark.django_db
def test_estimates_above_the_limit(small_limit):
    bulk_jobs(40)
    bulk_jobs(3, status=JobStatus.FAILED)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_jobs_job")
    unfiltered = counts.count_rows(Job.objects.all())
    assert not unfiltered.exact and unfiltered.value == 43  # pg_class.reltuples after ANALYZE
    filtered = counts.count_rows(Job.objects.filter(status=JobStatus.READY))
    assert not filtered.exact and filtered.value >= 6
    assert counts.count_rows(Job.objects.filter(status=JobStatus.FAILED)) == counts.RowCount(3)


@pytest.mark.postgres
@pytest.mark.django_db
def test_list_and_overview_never_count_the_whole_jobs_table(admin_client, small_limit):
    bulk_jobs(30)
    bulk_jobs(8, status=JobStatus.FAILED, queue_name="b")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_jobs_job")
    for url in (
        JOBS,
        f"{JOBS}?status=READY",
        f"{JOBS}?queue=b",
        f"{JOBS}?task=t.x",
        reverse("admin:django_jobs_overview_changelist"),
    ):
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(url)
        assert response.status_code == 200
        for query in queries.captured_queries:
            sql = query["sql"]
            # every count on the jobs table reads a bounded subquery or a time window
            if re.search(r'COUNT\(.*FROM "django_jobs_job"', sql) and "GROUP BY" not in sql:
                assert "LIMIT 6" in sql, (url, sql)
    page = admin_client.get(JOBS).content.decode()
    assert "about 38" in page


@pytest.mark.django_db
def test_skip_scan_lists_distinct_names():
    for task, queue in [("b.t", "q2"), ("a.t", "q1"), ("b.t", "q1"), ("c.t", "q3")]:
        make_job(task_name=task, queue_name=queue)
    assert stats.task_names() == ["a.t", "b.t", "c.t"]
    assert stats.queue_names() == ["q1", "q2", "q3"]
    assert stats.task_names(limit=2) == ["a.t", "b.t"]


@pytest.mark.django_db
@pytest.mark.parametrize("limit", [10_000, 1])
def test_queue_stats_small_and_large_paths_agree(settings, limit):
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "ADMIN_EXACT_COUNT_LIMIT": limit}
    now = timezone.now()
    make_job(queue_name="a", run_after=now - timedelta(minutes=2))
    make_job(queue_name="a", run_after=now + timedelta(minutes=2))
    make_job(JobStatus.RUNNING, queue_name="b")
    make_job(JobStatus.FAILED, queue_name="b")
    make_job(JobStatus.SUCCESSFUL, queue_name="c")
    rows = {q.name: q for q in stats.queue_stats("default", now)}
    assert sorted(rows) == ["a", "b", "c"]
    a, b, c = rows["a"], rows["b"], rows["c"]
    assert (a.ready.value, a.scheduled.value, a.running.value, a.failed.value) == (1, 1, 0, 0)
    assert (b.ready.value, b.running.value, b.failed.value) == (0, 1, 1)
    assert c.empty and a.oldest_ready is not None and b.oldest_ready is None


@pytest.mark.django_db
def test_throughput_buckets_and_cache():
    now = timezone.now().astimezone(UTC).replace(second=30, microsecond=0)
    minute = now.replace(second=0)
    for ago, status in [(5, JobStatus.SUCCESSFUL), (5, JobStatus.SUCCESSFUL), (5, JobStatus.FAILED),
                        (0, JobStatus.SUCCESSFUL), (90, JobStatus.SUCCESSFUL)]:  # fmt: skip
        make_job(status, finished_at=minute - timedelta(minutes=ago) + timedelta(seconds=10))
    series = stats.throughput_per_minute("default", now)
    assert len(series) == 60 and series[-1].start == minute
    by_start = {b.start: b for b in series}
    five = by_start[minute - timedelta(minutes=5)]
    assert (five.succeeded, five.failed) == (2, 1)
    assert series[-1].succeeded == 1
    assert sum(b.finished for b in series) == 4  # the 90-minute-old one is outside
    hours = stats.throughput_per_hour("default", now, series)
    assert len(hours) == 24 and sum(b.finished for b in hours) == 5
    # finished minutes are cached: a late row in an old minute is not recounted,
    # while the current minute is always fresh
    make_job(JobStatus.SUCCESSFUL, finished_at=minute - timedelta(minutes=5, seconds=-20))
    make_job(JobStatus.SUCCESSFUL, finished_at=minute + timedelta(seconds=20))
    again = {b.start: b for b in stats.throughput_per_minute("default", now)}
    assert again[minute - timedelta(minutes=5)].succeeded == 2
    assert again[minute].succeeded == 2


@pytest.mark.django_db
def test_estimated_paginator_serves_an_empty_page_past_the_real_end(monkeypatch):
    bulk_jobs(3)
    monkeypatch.setattr(counts, "count_rows", lambda qs: counts.RowCount(500, exact=False))
    paginator = counts.EstimatedCountPaginator(Job.objects.order_by("-id"), 50)
    assert (paginator.count, paginator.num_pages, paginator.count_is_estimate) == (500, 10, True)
    assert len(paginator.page(1).object_list) == 3
    assert list(paginator.page(7).object_list) == []  # not EmptyPage: the estimate was high
    with pytest.raises(counts.EmptyPage):
        paginator.page(0)
    exact = counts.EstimatedCountPaginator(Job.objects.order_by("-id"), 50)
    monkeypatch.undo()
    with pytest.raises(counts.EmptyPage):
        exact.page(2)


OVERVIEW = reverse("admin:django_jobs_overview_changelist")


@pytest.mark.postgres
@pytest.mark.django_db
def test_fresh_table_below_the_bound_is_counted_exactly_and_every_page_is_reachable(
    admin_client,
):
    # A fresh table, never analyzed: reltuples is -1 and the planner guesses a
    # few hundred rows. With the default bound the count must be exact.
    bulk_jobs(5_053)
    first = Job.objects.order_by("pk").values_list("pk", flat=True)[0]
    overview = admin_client.get(OVERVIEW)
    assert overview.context["jobs_total"] == counts.RowCount(5_053)
    assert ">5,053</a>" in overview.content.decode()
    response = admin_client.get(JOBS)
    paginator = response.context["cl"].paginator
    assert (paginator.count, paginator.num_pages) == (5_053, 102)
    assert not paginator.count_is_estimate
    assert "about" not in response.content.decode().split('class="paginator"')[1]
    last = admin_client.get(JOBS, {"p": 102})
    ids = [job.pk for job in last.context["cl"].result_list]
    assert len(ids) == 3 and min(ids) == first  # the oldest jobs are reachable


@pytest.mark.postgres
@pytest.mark.django_db
def test_above_the_bound_the_estimate_is_never_below_it(admin_client, settings):
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "ADMIN_EXACT_COUNT_LIMIT": 100}
    bulk_jobs(400)  # no ANALYZE: the planner's guesses are far too low
    bulk_jobs(150, status=JobStatus.FAILED)
    for queryset in (Job.objects.all(), Job.objects.filter(status=JobStatus.READY)):
        rows = counts.count_rows(queryset)
        assert not rows.exact and rows.value > 100, (queryset.query, rows)
    paginator = admin_client.get(f"{JOBS}?status=FAILED").context["cl"].paginator
    assert paginator.count_is_estimate and paginator.count > 100
    html = admin_client.get(OVERVIEW).content.decode()
    assert "PostgreSQL estimates" in html  # an estimate is shown, so the footnote explains it


@pytest.mark.django_db
def test_estimates_footnote_only_when_an_estimate_is_shown(admin_client, small_limit):
    bulk_jobs(3)
    assert "PostgreSQL estimates" not in admin_client.get(OVERVIEW).content.decode()
    bulk_jobs(12)
    html = admin_client.get(OVERVIEW).content.decode()
    # SQLite always counts exactly: never a footnote about PostgreSQL there.
    assert ("PostgreSQL estimates" in html) == (connection.vendor == "postgresql")


def test_y_axis_gutter_fits_the_widest_label():
    start = timezone.now().replace(second=0, microsecond=0)
    small = charts.bar_chart("t", [stats.Bucket(start, succeeded=3)], "%H:%M", 1)
    big = charts.bar_chart("t", [stats.Bucket(start, succeeded=6_000)], "%H:%M", 1)
    huge = charts.bar_chart("t", [stats.Bucket(start, succeeded=3_000_000)], "%H:%M", 1)
    assert big.y_ticks[-1].label == "10,000" and huge.y_ticks[-1].label == "5,000,000"
    for chart in (small, big, huge):
        widest = max(len(t.label) for t in chart.y_ticks)
        # the labels end LABEL_GAP left of the plot; each char is at most CHAR_WIDTH wide
        assert chart.left - charts.LABEL_GAP >= widest * charts.CHAR_WIDTH
        assert chart.bars[0].x >= chart.left
    assert small.left < big.left < huge.left
