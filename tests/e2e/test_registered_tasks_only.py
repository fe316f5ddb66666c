"""The worker runs registered tasks only: a job row naming any other callable
runs nothing, imports nothing, and is dead-lettered while the worker goes on."""

from __future__ import annotations

from pathlib import Path

import pytest

from django_jobs.models import DeadLetter, Job
from django_jobs.status import JobStatus
from tests.testapp import dtasks, tasks

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_rows_naming_arbitrary_callables_run_nothing(run_burst, tmp_path: Path, pool: str):
    marker = tmp_path / "ran"
    marker_module = tmp_path / "imported"
    hostile = [
        Job.objects.create(task_name="os.system", args=[f"touch {marker}"]),
        Job.objects.create(task_name="builtins.exec", args=[f"open({str(marker)!r}, 'w')"]),
        Job.objects.create(task_name="subprocess.run", args=[["touch", str(marker)]]),
        # A module nothing imported yet: naming it must not import it.
        Job.objects.create(task_name="tests.testapp.import_sentinel.anything", args=[str(marker)]),
        # A callable in a tasks module the worker imported, but no task.
        Job.objects.create(task_name="tests.testapp.tasks.current_job"),
    ]
    good = tasks.add.enqueue(2, 3)
    good_django = Job.objects.get(pk=int(dtasks.add.enqueue(4, 5).id))

    proc = run_burst(
        "--pool",
        pool,
        "--concurrency",
        "2",
        env={"DJANGO_JOBS_TEST_IMPORT_MARKER": str(marker_module)},
    )

    assert not marker.exists(), "a job row made the worker run an arbitrary callable"
    assert not marker_module.exists(), "a job row made the worker import a module"
    output = proc.output()
    for job in hostile:
        job.refresh_from_db()
        assert (job.status, job.attempts) == (JobStatus.FAILED, 1), job.task_name
        reason = DeadLetter.objects.get(job_id=job.pk).reason
        assert f"task {job.task_name!r} is not registered" in reason
        assert "TASK_MODULES" in reason  # says how to register one
        assert f"job {job.pk} dead-lettered" in output
    assert Job.objects.get(pk=good.pk).result == 5
    good_django.refresh_from_db()
    assert (good_django.status, good_django.result) == (JobStatus.SUCCESSFUL, 9)
