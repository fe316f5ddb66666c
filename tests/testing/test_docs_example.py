"""The example test of docs/howto/testing.md (included there verbatim)."""

from datetime import timedelta

import pytest
from django.test import TestCase

from django_jobs.testing.mixins import JobsTestMixin
from tests.testapp.models import Event
from tests.testapp.tasks import fail_times, place_order, send_receipt


# pytest: the `jobs` and `outbox` fixtures come with django_jobs (no conftest needed).
@pytest.mark.django_db
def test_placing_an_order(jobs, outbox):
    place_order(42)

    # What the code did, checked before anything runs.
    outbox.assert_published("order.created", payload={"order_id": 42}, key="42")
    jobs.assert_enqueued(send_receipt, args=[42], count=1)

    # Runs here, in the test's transaction: the relay dispatches the event to
    # its subscribers, whose jobs run; the receipt is not due yet.
    runs = jobs.run_jobs()
    assert sorted(run.task_name.rsplit(".", 1)[1] for run in runs) == [
        "on_any_order",
        "on_order_created",
    ]
    assert all(run.succeeded for run in runs)

    # Ten minutes later (the test clock; the database is not mocked).
    jobs.clock.advance(timedelta(minutes=10))
    (receipt,) = jobs.run_jobs()
    assert (receipt.status, receipt.result) == ("SUCCESSFUL", "receipt for order 42")
    assert Event.objects.filter(name="receipt", value__order_id=42).exists()
    jobs.assert_not_enqueued(send_receipt)


@pytest.mark.django_db
def test_a_flaky_job_is_retried(jobs):
    fail_times.enqueue(2)  # fails twice, then succeeds (max_attempts=3)

    # skip_backoff: each retry is due at once instead of after its backoff.
    runs = jobs.run_jobs(skip_backoff=True)
    assert [(run.attempt, run.status) for run in runs] == [
        (1, "READY"),
        (2, "READY"),
        (3, "SUCCESSFUL"),
    ]
    assert runs[0].error["message"] == "planned failure 1/2"


# unittest: the same helpers on Django's TestCase.
class OrderTests(JobsTestMixin, TestCase):
    def test_receipt_after_ten_minutes(self):
        place_order(7)
        self.assertPublished("order.created", payload={"order_id": 7})
        self.run_jobs()  # the subscribers
        self.assertEnqueued(send_receipt, args=[7])

        self.clock.advance(timedelta(minutes=10))
        (receipt,) = self.run_jobs()
        assert receipt.result == "receipt for order 7"
