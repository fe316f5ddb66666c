from django_jobs.status import TRANSITIONS, JobStatus, can_transition


def test_every_status_has_a_way_in_except_ready_which_is_the_start():
    reachable = {to for to, froms in TRANSITIONS.items() if froms}
    assert reachable == set(JobStatus.values)


def test_finished_jobs_cannot_be_claimed_or_completed_again():
    assert not can_transition(JobStatus.SUCCESSFUL, JobStatus.RUNNING)
    assert not can_transition(JobStatus.SUCCESSFUL, JobStatus.SUCCESSFUL)
    assert can_transition(JobStatus.READY, JobStatus.RUNNING)
    assert can_transition(JobStatus.FAILED, JobStatus.READY)
