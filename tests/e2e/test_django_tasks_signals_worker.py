"""Django's own task_finished receiver, in a real worker: a failed attempt is
logged with its traceback (the signal is sent while the exception is current)."""

from __future__ import annotations

import pytest

from django_jobs.models import Job
from django_jobs.status import JobStatus
from tests.testapp import dtasks

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_failed_task_is_logged_with_its_traceback(run_burst, pool):
    result = dtasks.raises_value_error.enqueue()
    Job.objects.filter(pk=int(result.id)).update(max_attempts=1)

    proc = run_burst("--pool", pool, "--concurrency", "1", env={"DEBUG": "true"})

    assert Job.objects.get(pk=int(result.id)).status == JobStatus.FAILED
    output = proc.output()
    line = f"Task id={result.id} path=tests.testapp.dtasks.raises_value_error state=FAILED"
    assert line in output
    logged = output[output.index(line) :]
    assert logged.split("\n", 1)[1].startswith("Traceback (most recent call last):"), logged
    assert "ValueError: bad value in the task" in logged
