"""The campaign lifecycle as compare-and-set transitions in SQL, on SQLite and PostgreSQL: one
coordinator per campaign, leases that lapse, resume and cancel that cannot undo each other."""

from __future__ import annotations

import threading
import time

import pytest

from evolver import lifecycle
from evolver.lifecycle import CampaignBusy, LifecycleError, Lease


@pytest.fixture
def campaign(store, tmp_path) -> int:
    return store.create_campaign("life", {"population": 1}, str(tmp_path))


def test_one_coordinator_at_a_time_and_the_second_names_the_first(store, campaign):
    first, second = Lease(holder="host-a:1:aa"), Lease(holder="host-b:2:bb")
    record = lifecycle.claim(store, campaign, first)
    assert record.status == "running" and record.holder == first.holder and record.lease_expires_at is not None
    with pytest.raises(CampaignBusy, match="host-a:1:aa"):
        lifecycle.claim(store, campaign, second)
    assert lifecycle.renew(store, campaign, first) == "running"
    assert lifecycle.renew(store, campaign, second) is None  # not its campaign
    lifecycle.release(store, campaign, first, "completed")
    record = store.campaign(campaign)
    assert record.status == "completed" and record.holder is None and record.lease_expires_at is None


def test_claims_at_once_exactly_one_wins(store, campaign):
    leases = [Lease(holder=f"h{i}") for i in range(6)]
    won, refused = [], []

    def try_claim(lease):
        try:
            lifecycle.claim(store, campaign, lease)
            won.append(lease.holder)
        except CampaignBusy:
            refused.append(lease.holder)

    threads = [threading.Thread(target=try_claim, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1 and len(refused) == 5
    assert store.campaign(campaign).holder == won[0]


def test_a_dead_holders_lease_lapses_and_the_campaign_is_taken_over(store, campaign):
    dead, heir = Lease(seconds=0.3, holder="dead"), Lease(holder="heir")
    lifecycle.claim(store, campaign, dead)
    with pytest.raises(CampaignBusy):  # while the lease is live: refused, for the CLI and the API alike
        lifecycle.reopen(store, campaign)
    time.sleep(0.5)
    assert lifecycle.claim(store, campaign, heir).holder == "heir"  # `evolver run --campaign N` takes over
    assert lifecycle.renew(store, campaign, dead) is None  # the old one, if it wakes, knows it lost
    lifecycle.release(store, campaign, dead, "failed", error="late")  # and its release changes nothing
    assert store.campaign(campaign).status == "running" and store.campaign(campaign).holder == "heir"


def test_reopen_of_a_crashed_campaign_is_allowed_once_its_lease_lapsed(store, campaign):
    lifecycle.claim(store, campaign, Lease(seconds=0.3, holder="crashed"))
    time.sleep(0.5)
    record = lifecycle.reopen(store, campaign)  # POST /resume and `evolver resume` agree
    assert record.status == "queued" and record.holder is None and record.job_id is None


def test_two_resumes_at_once_one_wins(store, campaign):
    lifecycle.cancel(store, campaign)
    results = []

    def resume():
        try:
            results.append(lifecycle.reopen(store, campaign).status)
        except CampaignBusy as err:
            results.append(str(err))

    threads = [threading.Thread(target=resume) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("queued") == 1
    assert all("already queued" in r for r in results if r != "queued")


def test_cancel_then_resume_is_not_undone_by_the_cancelled_coordinator(store, campaign):
    old = Lease(holder="old")
    lifecycle.claim(store, campaign, old)
    lifecycle.set_job(store, campaign, "job-1")
    lifecycle.cancel(store, campaign)
    assert lifecycle.renew(store, campaign, old) == "cancelled"  # the old coordinator notices
    lifecycle.reopen(store, campaign)  # a resume lands before it has released
    lifecycle.set_job(store, campaign, "job-2")
    lifecycle.release(store, campaign, old, "cancelled")  # its last word must not undo the resume
    assert not lifecycle.job_ended(store, campaign, "job-1", "stopped")  # nor the old job's end
    record = store.campaign(campaign)
    assert (record.status, record.job_id, record.holder, record.error) == ("queued", "job-2", None, None)
    assert lifecycle.claim(store, campaign, Lease(holder="new")).status == "running"


def test_claim_waits_for_a_stopping_holder_to_release(store, campaign):
    old = Lease(holder="old")
    lifecycle.claim(store, campaign, old)
    lifecycle.cancel(store, campaign)
    lifecycle.reopen(store, campaign)
    threading.Timer(0.4, lifecycle.release, args=(store, campaign, old, "cancelled")).start()
    assert lifecycle.claim(store, campaign, Lease(holder="new"), wait_seconds=5).holder == "new"


def test_ended_campaigns_are_not_claimed_and_finished_ones_not_cancelled(store, campaign):
    lease = Lease(holder="x")
    lifecycle.claim(store, campaign, lease)
    lifecycle.release(store, campaign, lease, "completed")
    with pytest.raises(LifecycleError, match="completed; `evolver resume"):
        lifecycle.claim(store, campaign, Lease(holder="y"))
    with pytest.raises(LifecycleError, match="already completed"):
        lifecycle.cancel(store, campaign)


def test_job_end_fails_only_an_unheld_campaign_naming_that_job(store, campaign):
    lifecycle.set_job(store, campaign, "job-1")
    lease = Lease(holder="live")
    lifecycle.claim(store, campaign, lease)
    assert not lifecycle.job_ended(store, campaign, "job-1", "gone")  # a live holder runs it
    assert not lifecycle.job_ended(store, campaign, "job-0", "gone")
    store.transition_campaign(campaign, from_statuses=None, holder_is="live", holder=None)  # the holder vanished
    assert lifecycle.job_ended(store, campaign, "job-1", "Ray job job-1 ended FAILED")
    record = store.campaign(campaign)
    assert record.status == "failed" and record.error == "Ray job job-1 ended FAILED"


def test_bad_transitions_name_the_problem(store, campaign):
    with pytest.raises(ValueError, match="cannot change campaign field"):
        store.transition_campaign(campaign, from_statuses=None, colour="red")
    with pytest.raises(ValueError, match="lease_seconds must be positive"):
        store.transition_campaign(campaign, from_statuses=None, lease_seconds=0)
    with pytest.raises(ValueError, match="completed, failed or cancelled"):
        lifecycle.release(store, campaign, Lease(), "running")
