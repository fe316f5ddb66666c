"""Values PostgreSQL cannot store (a NUL character in JSON) fail their own job, nothing else.

json.dumps writes "\\u0000", which jsonb rejects: a result or error message with
one used to fail the whole batch of completions it was written with, over and over.
"""

from __future__ import annotations

import pytest

from django_jobs.models import DeadLetter, Job
from django_jobs.status import JobStatus
from tests.e2e.crash_support import ids
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_nul_in_a_result_or_an_error_fails_that_job_and_the_batch_goes_through(run_burst):
    poisoned = tasks.returns_nul.enqueue()
    raising = tasks.raises_nul.enqueue()
    fine = ids(tasks.record.enqueue_many([("fine",)] * 5))
    worker = run_burst("--concurrency", "4")
    assert Job.objects.filter(pk__in=fine, status=JobStatus.SUCCESSFUL).count() == 5
    poisoned.refresh_from_db()
    assert poisoned.status == JobStatus.FAILED
    assert "the task's return value contains a NUL character" in poisoned.errors[-1]["message"]
    raising.refresh_from_db()
    assert raising.status == JobStatus.FAILED
    assert raising.errors[-1]["message"] == "bad byte \\x00 in input"
    assert DeadLetter.objects.filter(job_id__in=[poisoned.pk, raising.pk]).count() == 2
    assert "database unavailable" not in worker.output()


def test_a_nul_in_arguments_is_refused_at_enqueue_and_nothing_is_written():
    with pytest.raises(TypeError, match=r"record: positional argument 0 contains a NUL character"):
        tasks.record.enqueue("a\x00b")
    with pytest.raises(TypeError, match=r"NUL character"):
        tasks.record.enqueue_many([("ok",), ("a\x00b",)])
    assert not Job.objects.exists()
    # An escaped backslash followed by "u0000" is ordinary text, not a NUL.
    job = tasks.record.enqueue("\\u0000")
    assert Job.objects.get(pk=job.pk).args == ["\\u0000"]
