"""The pytest fixtures (through a real inner pytest run) and the unittest mixin."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from django.test import TestCase, TransactionTestCase

from django_jobs.testing.mixins import JobsTestMixin
from tests.conftest import ROOT
from tests.testapp import tasks

INNER_TESTS = textwrap.dedent(
    """
    import pytest
    from django.db import transaction

    from django_jobs import outbox
    from tests.testapp import tasks


    def test_jobs_fixture(jobs):
        tasks.add.enqueue(2, 2)
        jobs.assert_enqueued(tasks.add, args=[2, 2], count=1)
        (run,) = jobs.run_jobs()
        assert run.result == 4
        jobs.assert_not_enqueued(tasks.add)


    def test_outbox_fixture(jobs, outbox):
        with transaction.atomic():
            outbox.assert_not_published("order.created")
            from django_jobs import outbox as ob
            ob.publish("order.created", {"id": 1})
        outbox.assert_published("order.created", payload={"id": 1})
        assert len(jobs.run_jobs()) == 2


    @pytest.mark.django_db(transaction=True)
    def test_transactional(jobs):
        tasks.add.enqueue(1, 1)
        assert [r.status for r in jobs.run_jobs()] == ["SUCCESSFUL"]


    def test_clock_is_reset_between_tests_part_one(jobs):
        jobs.clock.advance(3600)


    def test_clock_is_reset_between_tests_part_two(jobs):
        from django.utils import timezone
        assert abs((jobs.clock.now() - timezone.now()).total_seconds()) < 60


    def test_failure_message(jobs):
        tasks.add.enqueue(1, 2)
        jobs.assert_enqueued(tasks.noop)
    """
)


def test_pyproject_declares_the_pytest11_entry_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    target = project["entry-points"]["pytest11"]["django_jobs"]
    assert target == "django_jobs.pytest_plugin"
    module = __import__(target, fromlist=["jobs"])
    assert callable(module.jobs) and callable(module.outbox)


def test_fixtures_in_an_inner_pytest_run(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="tests.settings",
        DJANGO_JOBS_TEST_NAME_SUFFIX="_inner",
    )
    # The plugin is named explicitly unless the installed distribution's entry
    # point already loads it (an editable install of another tree may not have it).
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-p",
         "tests.testing.load_plugin", str(tmp_path / "test_inner.py"),
         "--rootdir", str(tmp_path), "-o", "addopts="],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert "1 failed, 5 passed" in out, out
    assert "expected a job of tests.testapp.tasks.noop enqueued, found 0" in out, out
    assert "tests.testapp.tasks.add args=[1, 2]" in out, out


class MixinInTestCase(JobsTestMixin, TestCase):
    def test_run_and_assert(self) -> None:
        tasks.add.enqueue(5, 5)
        self.assertEnqueued(tasks.add, args=[5, 5])
        (run,) = self.run_jobs()
        assert run.result == 10
        self.assertNotEnqueued(tasks.add)
        assert self.enqueued_jobs(tasks.add) == []

    def test_outbox_and_clock(self) -> None:
        from django_jobs import outbox

        outbox.publish("order.created", {"order_id": 3})
        self.assertPublished("order.created", payload={"order_id": 3})
        self.assertNotPublished("order.cancelled")
        self.clock.advance(60)
        assert len(self.run_jobs()) == 2


class MixinOnSecondAlias(JobsTestMixin, TransactionTestCase):
    databases = {"default", "jobs"}
    jobs_database = "jobs"

    def test_second_alias(self) -> None:
        tasks.add.using(database="jobs").enqueue(1, 2)
        self.assertEnqueued("tests.testapp.tasks.add", args=[1, 2])
        assert [r.result for r in self.run_jobs()] == [3]
