"""The relay for real: runworker and runrelay subprocesses against the test
database. Exactly once per subscriber, per-key order, crash safety."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import defaultdict

import psycopg
import pytest
from django.db import connection, transaction

from django_jobs import outbox
from django_jobs.models import Job, OutboxEvent
from django_jobs.status import JobStatus, OutboxStatus
from tests.conftest import ROOT, WorkerProcess, wait_until, worker_env
from tests.testapp import subscribers, tasks
from tests.testapp.models import Event as Log

pytestmark = pytest.mark.django_db(transaction=True)


class RelayProcess(WorkerProcess):
    """A real ``manage.py runrelay`` subprocess."""

    def __init__(self, args: list[str], log_path) -> None:
        self.args = ["runrelay", *args]
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), *self.args],
            cwd=ROOT,
            env=worker_env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
def start_relay(request, tmp_path):
    """Start ``manage.py runrelay`` subprocesses; all are killed at teardown."""
    started: list[RelayProcess] = []

    def start(*args: str) -> RelayProcess:
        started.append(RelayProcess(list(args), tmp_path / f"relay-{len(started)}.log"))
        return started[-1]

    yield start
    failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else False
    for proc in started:
        proc.close()
        if failed:
            sys.stderr.write(f"--- {proc.log_path.name} ---\n{proc.output()[-3000:]}\n")


def logs(name):
    return list(Log.objects.filter(name=name).order_by("id"))


def test_committed_events_reach_each_subscriber_once_rolled_back_never(start_worker):
    with transaction.atomic():
        kept = outbox.publish("order.created", {"order": 1}, key="o-1")
    with pytest.raises(RuntimeError), transaction.atomic():
        outbox.publish("order.created", {"order": 2}, key="o-2")
        raise RuntimeError("roll back the business change")
    worker = start_worker("--concurrency", "4")
    wait_until(lambda: len(Log.objects.all()) == 2, 30, message="both subscribers ran")
    later = outbox.publish("order.created", {"order": 3}, key="o-3")  # worker already running
    wait_until(lambda: len(Log.objects.all()) == 4, 30, message="later event relayed")
    assert worker.terminate() == 0  # a graceful stop finishes what is in flight
    assert len(Log.objects.all()) == 4, "an event reached a subscriber twice"
    seen = sorted((row.name, row.value["event"]) for row in Log.objects.all())
    names = ["on_any_order", "on_order_created"]
    assert seen == sorted((name, e.pk) for name in names for e in (kept, later))
    assert {row.value["payload"]["order"] for row in Log.objects.all()} == {1, 3}
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {OutboxStatus.DISPATCHED}
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.SUCCESSFUL}


@pytest.mark.postgres
def test_relay_wakes_on_notify_not_on_polling(start_worker):
    worker = start_worker("--poll-interval", "60")  # polling alone would take a minute
    wait_until(lambda: listening("django_jobs_outbox"), 20, message="the relay's LISTEN")
    event = outbox.publish("order.created", {"order": 5})
    wait_until(lambda: len(Log.objects.all()) == 2, 15, message="woken by NOTIFY on commit")
    assert {row.value["event"] for row in Log.objects.all()} == {event.pk}
    assert worker.terminate() == 0


@pytest.mark.postgres
@pytest.mark.parametrize("use_notify", [True, False], ids=["notify", "no-notify"])
def test_use_notify_off_nothing_listens_or_notifies_and_all_flows_by_polling(
    start_worker, settings, use_notify
):
    """USE_NOTIFY=False (PgBouncer in transaction mode): no LISTEN session, no
    NOTIFY sent, and jobs and events still flow, by polling. The setting on is
    the control: the same checks see the worker's LISTEN sessions."""
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "USE_NOTIFY": use_notify}  # our enqueues
    env = {"DJANGO_JOBS_TEST_USE_NOTIFY": "1" if use_notify else "0"}
    channels = ("django_jobs", "django_jobs_outbox")
    with psycopg.connect(**_params(connection.settings_dict["NAME"]), autocommit=True) as ear:
        for channel in channels:
            ear.execute(f"LISTEN {channel}")  # a constant identifier
        worker = start_worker("--concurrency", "2", env=env)
        if use_notify:
            for channel in channels:
                wait_until(lambda c=channel: listening(c, besides=ear.info.backend_pid), 20)
        job = tasks.add.enqueue(1, 2)
        event = outbox.publish("order.created", {"order": 1})
        wait_until(lambda: len(Log.objects.all()) == 2, 30, message="event reached subscribers")
        wait_until(
            lambda: Job.objects.get(pk=job.pk).status == JobStatus.SUCCESSFUL, 30, message="job"
        )
        heard = list(ear.notifies(timeout=0.5, stop_after=1))
        for channel in channels:
            assert listening(channel, besides=ear.info.backend_pid) is use_notify, channel
    assert bool(heard) is use_notify, heard
    assert {row.value["event"] for row in Log.objects.all()} == {event.pk}
    assert worker.terminate() == 0


def test_no_relay_option_and_standalone_runrelay(run_burst, start_relay):
    event = outbox.publish("order.created", {"order": 9})
    run_burst("--no-relay")
    assert OutboxEvent.objects.get(pk=event.pk).status == OutboxStatus.PENDING
    relay = start_relay("--once")
    assert relay.wait(60) == 0, relay.output()
    assert "dispatched 1 event(s)" in relay.output()
    assert OutboxEvent.objects.get(pk=event.pk).status == OutboxStatus.DISPATCHED
    assert set(jobs_per_event_and_subscriber()) == {
        (event.pk, subscribers.on_order_created.name),
        (event.pk, subscribers.on_any_order.name),
    }


def test_burst_worker_relays_pending_events_first(run_burst):
    outbox.publish_many([("order.created", {"order": n}) for n in range(3)])
    run_burst()
    assert len(Log.objects.all()) == 6
    assert not OutboxEvent.objects.pending().exists()


def jobs_per_event_and_subscriber():
    """(event id, task name) -> number of jobs."""
    counts: dict[tuple[int, str], int] = defaultdict(int)
    for args, task_name in Job.objects.values_list("args", "task_name").iterator():
        counts[(args[0]["id"], task_name)] += 1
    return dict(counts)


@pytest.mark.postgres
def test_three_relays_racing_dispatch_5000_events_exactly_once(start_relay):
    relays = [start_relay("--batch-size", "100") for _ in range(3)]
    ids = []
    for chunk in range(10):  # published while the relays run, 500 per transaction
        with transaction.atomic():
            events = outbox.publish_many(
                [
                    ("bulk.item", {"n": n}, None if n % 2 else f"k{n % 40}")
                    for n in range(chunk * 500, chunk * 500 + 500)
                ]
            )
        ids.extend(e.pk for e in events)
    wait_until(lambda: not OutboxEvent.objects.pending().exists(), 120, message="all dispatched")
    counts = jobs_per_event_and_subscriber()
    expected = {(i, t.name) for i in ids for t in (subscribers.bulk_first, subscribers.bulk_second)}
    assert set(counts) == expected
    assert set(counts.values()) == {1}
    assert OutboxEvent.objects.dispatched().count() == 5000
    for relay in relays:
        assert relay.terminate() == 0
    dispatched = [int(r.output().split("dispatched ")[-1].split()[0]) for r in relays]
    assert sum(dispatched) == 5000
    assert sum(1 for n in dispatched if n) >= 2, f"only one relay did the work: {dispatched}"


@pytest.mark.postgres
def test_per_key_order_holds_under_concurrent_relays(start_relay, start_worker):
    for _ in range(3):
        start_relay("--batch-size", "7")
    start_worker("--no-relay", "--concurrency", "1")
    keys = [f"acct-{k}" for k in range(6)]
    for step in range(30):  # 6 keys x 50 events, 10 per transaction, interleaved
        with transaction.atomic():
            outbox.publish_many(
                [("seq.step", {"seq": step * 10 + i}, keys[(step + i) % 6]) for i in range(10)]
            )
    wait_until(lambda: Log.objects.count() == 300, 120, message="300 subscriber runs")
    by_job, by_run = defaultdict(list), defaultdict(list)
    jobs = {j.pk: j.args[0] for j in Job.objects.filter(task_name=subscribers.record_sequence.name)}
    for job_id in sorted(jobs):  # dispatch order: job ids
        by_job[jobs[job_id]["key"]].append(jobs[job_id]["payload"]["seq"])
    for row in logs("record_sequence"):  # execution order on one worker
        by_run[row.value["key"]].append(row.value["payload"]["seq"])
    assert set(by_job) == set(keys)
    for key in keys:
        assert len(by_job[key]) == 50
        assert by_job[key] == sorted(by_job[key]), f"{key} dispatched out of order"
        assert by_run[key] == by_job[key], f"{key} ran out of order"


def open_relay_transaction(dbname: str):
    """The pid of a backend of the relay that holds an open write transaction."""
    with psycopg.connect(**_params(dbname), autocommit=True) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() "
            "AND backend_xid IS NOT NULL",
            [dbname],
        ).fetchone()
        return row[0] if row else None


def listening(channel: str, *, besides: int = 0) -> bool:
    """A session of the test database other than ours (and ``besides``) has
    run LISTEN on ``channel``: its last statement, shown while it waits."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND pid <> %s AND query = %s",
            [besides, f"LISTEN {channel}"],
        )
        return cursor.fetchone() is not None


def _params(dbname):
    params = connection.get_connection_params()
    for name in ("cursor_factory", "context", "server_side_binding", "prepare_threshold"):
        params.pop(name, None)
    params["dbname"] = dbname
    return params


@pytest.mark.postgres
def test_relay_killed_mid_batch_loses_and_duplicates_nothing(start_relay):
    outbox.publish_many([("bulk.item", {"n": n}, f"k{n % 7}") for n in range(3000)])
    dbname = connection.settings_dict["NAME"]
    relay = start_relay("--batch-size", "500")
    backend = wait_until(lambda: open_relay_transaction(dbname), 60, 0.001, "a batch in flight")
    relay.popen.send_signal(signal.SIGKILL)
    relay.popen.wait(10)
    with psycopg.connect(**_params(dbname), autocommit=True) as conn:
        wait_until(
            lambda: (
                not conn.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE pid = %s", [backend]
                ).fetchone()
            ),
            30,
            message="the killed relay's transaction to end",
        )
    # Whatever committed is whole: a DISPATCHED event has its two jobs, a PENDING one none.
    counts = jobs_per_event_and_subscriber()
    dispatched = set(OutboxEvent.objects.dispatched().values_list("pk", flat=True))
    assert {event_id for event_id, _ in counts} == dispatched
    assert set(counts.values()) <= {1}
    assert len(dispatched) < 3000, "the relay finished before it was killed"
    finisher = start_relay("--once")
    assert finisher.wait(120) == 0, finisher.output()
    counts = jobs_per_event_and_subscriber()
    assert len(counts) == 6000 and set(counts.values()) == {1}
    assert not OutboxEvent.objects.pending().exists()
