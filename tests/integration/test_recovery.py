"""Recovery on PostgreSQL: recovered and handed-back jobs wake idle workers
through NOTIFY. (Recovery and fencing themselves, on every engine, are in
engine_contract/.)"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from django_jobs.engine import get_engine
from django_jobs.models import Job
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

STALE = uuid.uuid4()


@pytest.mark.postgres
def test_recovery_and_hand_back_notify_the_queue():
    tasks.add.using(queue_name="mail").enqueue(1, 1)
    tasks.add.using(queue_name="sms").enqueue(1, 1)
    engine = get_engine()
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"],
        port=settings["PORT"],
        autocommit=True,
    ) as listener:
        listener.execute("LISTEN django_jobs")
        mail, sms = engine.claim_jobs(STALE, None, 2, 30)
        Job.objects.filter(pk=mail.id).update(lease_expires_at=timezone.now())
        engine.recover_expired()
        engine.release_jobs([sms])
        heard = [n.payload for n in listener.notifies(timeout=2, stop_after=2)]
    assert sorted(heard) == ["mail", "sms"]
