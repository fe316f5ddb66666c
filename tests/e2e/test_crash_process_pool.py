"""``runworker --pool process``: poison jobs, recycling, children never leak."""

from __future__ import annotations

from collections import Counter

import pytest
from django.core.management import CommandError, call_command

from django_jobs.models import DeadLetter, Job, Worker
from django_jobs.status import JobStatus
from tests.conftest import wait_until
from tests.e2e.crash_support import alive, children_of, ids, wait_for
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_poison_jobs_are_dead_lettered_and_the_worker_survives(start_worker):
    poison = {
        "exited with code 1": tasks.crash_exit.enqueue(),
        "was killed by SIGSEGV": tasks.crash_segfault.enqueue(),
        "was killed by SIGKILL (out of memory?": tasks.crash_sigkill.enqueue(),
    }
    good = tasks.add.enqueue_many([(n, n) for n in range(30)])
    worker = start_worker("--pool", "process", "--concurrency", "2")
    wait_for(ids(poison.values()), JobStatus.FAILED, 60, "poison jobs dead-lettered")
    wait_for(ids(good), JobStatus.SUCCESSFUL, 30, "the other jobs")
    for text, job in poison.items():
        job.refresh_from_db()
        assert job.attempts == 2 and len(job.errors) == 2
        assert {e["exception_class"] for e in job.errors} == {
            "django_jobs.exceptions.WorkerCrashed"
        }
        reason = DeadLetter.objects.get(job_id=job.pk).reason
        assert reason.startswith("attempts exhausted (2/2): worker child (pid ")
        assert f"{text}" in reason and f"while running job {job.pk}" in reason
    # The worker is still up, with a full pool, and still takes work.
    assert worker.popen.poll() is None
    assert len(children_of(worker.pid)) == 2
    later = tasks.add.enqueue(20, 22)
    wait_for([later.pk], JobStatus.SUCCESSFUL, 20, "a job after the crashes")
    assert Job.objects.get(pk=later.pk).result == 42
    assert worker.terminate() == 0


def test_children_are_recycled_after_max_tasks(run_burst):
    jobs = tasks.whoami.enqueue_many([()] * 7)
    proc = run_burst("--pool", "process", "--concurrency", "1", "--max-tasks-per-child", "3")
    pids = [Job.objects.get(pk=job.pk).result for job in jobs]
    assert Counter(pids).most_common(1)[0][1] <= 3
    assert len(set(pids)) >= 3  # 3 + 3 + 1
    assert proc.pid not in pids  # jobs ran in children, not in the worker


def test_child_is_recycled_past_its_memory_limit(run_burst):
    before = tasks.whoami.enqueue()
    hog = tasks.hog_memory.enqueue(200)
    after = tasks.whoami.enqueue()
    run_burst("--pool", "process", "--concurrency", "1", "--max-memory-per-child", "150")
    pids = [Job.objects.get(pk=job.pk).result for job in (before, hog, after)]
    assert Job.objects.filter(status=JobStatus.SUCCESSFUL).count() == 3
    assert pids[0] == pids[1], "a child under the limit keeps running jobs"
    assert pids[2] != pids[1], "the child past the limit was replaced after its job"


def test_children_exit_with_the_worker(start_worker):
    worker = start_worker("--pool", "process", "--concurrency", "3")
    wait_until(lambda: len(children_of(worker.pid)) == 3, 20, message="3 children forked")
    children = children_of(worker.pid)
    assert worker.terminate() == 0
    assert not any(alive(pid) for pid in children)


def test_children_exit_when_the_worker_is_killed(start_worker):
    worker = start_worker("--pool", "process", "--concurrency", "2")
    wait_until(lambda: len(children_of(worker.pid)) == 2, 20, message="2 children forked")
    children = children_of(worker.pid)
    worker.kill()
    wait_until(lambda: not any(alive(pid) for pid in children), 10, message="orphans exit")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-tasks-per-child", "5"], "--max-tasks-per-child needs --pool process"),
        (["--max-memory-per-child", "100"], "--max-memory-per-child needs --pool process"),
        (["--pool", "process", "--max-tasks-per-child", "0"], "must be at least 1"),
        (["--pool", "process", "--max-memory-per-child", "-1"], "positive number of MiB"),
    ],
)
def test_bad_pool_options_are_refused_before_anything_starts(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("runworker", *args)
    assert not Worker.objects.exists()
