"""A worker that cannot start all its runner threads stops cleanly: no stale
Worker row, no heartbeat left running, a clear error (issue 18 point 9)."""

from __future__ import annotations

import threading

import pytest

from django_jobs.exceptions import WorkerStartError
from django_jobs.models import Worker as WorkerRow
from django_jobs.worker.worker import Worker, WorkerOptions

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_runner_thread_that_cannot_start_stops_the_worker_cleanly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        # Fault injection: the process runs out of threads at the third runner,
        # as `--concurrency 50000` did ("can't start new thread").
        if self.name == "django_jobs-runner-3":
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    worker = Worker(WorkerOptions(concurrency=5, burst=True))

    with pytest.raises(WorkerStartError, match=r"runner thread 3 of 5: can't start new thread"):
        worker.run()

    assert not WorkerRow.objects.exists(), "the worker row must not outlive a failed start"
    for thread in threading.enumerate():
        if thread.name.startswith("django_jobs-"):
            thread.join(10)
    alive = [t.name for t in threading.enumerate() if t.name.startswith("django_jobs-")]
    assert alive == [], f"threads left running after a failed start: {alive}"
