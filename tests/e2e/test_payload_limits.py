"""Inside a real worker: an oversized result fails its attempt with a clear error,
and set_progress refuses what cannot be stored at the call, not in SQL.

The worker runs with the default MAX_PAYLOAD_BYTES (1 MiB).
"""

from __future__ import annotations

import pytest

from django_jobs.models import Job
from django_jobs.status import JobStatus
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

MIB = 1024 * 1024


def test_an_oversized_result_fails_its_attempt_and_a_result_at_the_limit_does_not(run_burst):
    over = tasks.returns_oversized.enqueue(MIB)  # '"' + MiB + '"': 2 bytes over
    at_limit = tasks.returns_oversized.enqueue(MIB - 2)
    run_burst()
    over.refresh_from_db()
    assert over.status == JobStatus.FAILED
    assert over.result is None
    error = over.errors[-1]
    assert error["exception_class"] == "builtins.ValueError"
    assert error["message"] == (
        "the task's return value is 1,048,578 bytes of JSON, over "
        "DJANGO_JOBS['MAX_PAYLOAD_BYTES'] (1,048,576)"
    )
    at_limit.refresh_from_db()
    assert at_limit.status == JobStatus.SUCCESSFUL
    assert len(at_limit.result) == MIB - 2


@pytest.mark.parametrize(
    ("kind", "error", "message"),
    [
        ("nul", "builtins.TypeError", "progress contains a NUL character"),
        ("surrogate", "builtins.TypeError", "progress contains a lone surrogate (\\ud800)"),
        ("oversized", "builtins.ValueError", "progress is 1,048,588 bytes of JSON, over"),
    ],
)
def test_set_progress_refuses_unstorable_values_at_the_call(run_burst, kind, error, message):
    plain = tasks.sets_bad_progress.enqueue(kind)
    atomic = tasks.sets_bad_progress_atomic.enqueue(kind)
    worker = run_burst()
    for job in (plain, atomic):
        job.refresh_from_db()
        assert job.status == JobStatus.FAILED, job.errors
        assert job.progress is None
        assert job.errors[-1]["exception_class"] == error
        assert message in job.errors[-1]["message"]
        assert "set_progress" in job.errors[-1]["traceback"]
    assert "DataError" not in worker.output()
    assert Job.objects.filter(result="set_progress returned").count() == 0
