"""The worker's ledger counts every job end once, whoever wrote it (no database)."""

from __future__ import annotations

from datetime import UTC, datetime

from django_jobs.worker.ledger import Ledger


def test_every_end_counts_as_a_job_run_and_hand_backs_do_not():
    ledger = Ledger()
    ledger.record_completions(5, lost=1)  # one batch, one completion refused
    ledger.record_failure(datetime.now(UTC), written=True)
    ledger.record_failure(None, written=True)
    ledger.record_failure(None, written=False)  # the claim was lost first
    ledger.record_written()
    ledger.record_written()
    ledger.record_lost()
    ledger.record_handed_back(3)
    counts = (ledger.completed, ledger.written, ledger.retried, ledger.dead_lettered, ledger.lost)
    assert counts == (4, 2, 1, 1, 3)
    assert ledger.ran == 11
    assert ledger.summary() == (
        "11 job(s): 4 completed, 2 completed atomically, 1 to retry, 1 dead-lettered, "
        "3 claim lost; 3 handed back unstarted"
    )


def test_a_new_ledger_says_so():
    ledger = Ledger()
    assert ledger.ran == 0
    assert ledger.summary() == "0 job(s)"
    ledger.record_handed_back(2)
    assert (ledger.ran, ledger.summary()) == (0, "0 job(s); 2 handed back unstarted")
    ledger.record_written()
    assert ledger.summary() == "1 job(s): 1 completed atomically; 2 handed back unstarted"
