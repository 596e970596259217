"""The campaign lifecycle as compare-and-set transitions in SQL, on SQLite and PostgreSQL: one
coordinator per campaign, leases that lapse, resume and cancel that cannot undo each other."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from evolver import lifecycle
from evolver.lifecycle import CampaignBusy, LifecycleError, Lease
from evolver.store import store as store_module
from evolver.store.models import Campaign

ROUNDS = 10  # races per test: each must come out with exactly one winner


def lapse_lease(store, campaign_id: int) -> None:
    """What the passing of time does to a dead coordinator's lease: it lies in the past (the
    database's past: leases are kept on its clock). No sleeping, so no flaking under load."""
    with store.engine.begin() as conn:
        conn.execute(update(Campaign).where(Campaign.id == campaign_id)
                     .values(lease_expires_at=store._database_time(-1.0)))


def race(competitors: list) -> list:
    """Run every competitor at the same instant (a barrier releases them together); returns what
    each returned, or the exception it raised."""
    barrier = threading.Barrier(len(competitors))
    results: list = [None] * len(competitors)

    def run(index: int, compete) -> None:
        barrier.wait(timeout=30)
        try:
            results[index] = compete()
        except Exception as err:  # noqa: BLE001 -- the refusals are results too
            results[index] = err

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(competitors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


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
    for round_ in range(ROUNDS):
        leases = [Lease(holder=f"r{round_}h{i}") for i in range(6)]
        results = race([lambda lease=lease: lifecycle.claim(store, campaign, lease) for lease in leases])
        won = [r.holder for r in results if not isinstance(r, Exception)]
        assert len(won) == 1 and all(isinstance(r, CampaignBusy) for r in results if isinstance(r, Exception)), results
        assert store.campaign(campaign).holder == won[0]
        lifecycle.release(store, campaign, Lease(holder=won[0]), "cancelled")
        lifecycle.reopen(store, campaign)


def test_a_dead_holders_lease_lapses_and_the_campaign_is_taken_over(store, campaign):
    dead, heir = Lease(holder="dead"), Lease(holder="heir")
    lifecycle.claim(store, campaign, dead)
    with pytest.raises(CampaignBusy):  # while the lease is live: refused, for the CLI and the API alike
        lifecycle.reopen(store, campaign)
    lapse_lease(store, campaign)
    assert lifecycle.claim(store, campaign, heir).holder == "heir"  # `evolver run --campaign N` takes over
    assert lifecycle.renew(store, campaign, dead) is None  # the old one, if it wakes, knows it lost
    lifecycle.release(store, campaign, dead, "failed", error="late")  # and its release changes nothing
    assert store.campaign(campaign).status == "running" and store.campaign(campaign).holder == "heir"


def test_reopen_of_a_crashed_campaign_is_allowed_once_its_lease_lapsed(store, campaign):
    lifecycle.claim(store, campaign, Lease(holder="crashed"))
    lapse_lease(store, campaign)
    record = lifecycle.reopen(store, campaign)  # POST /resume and `evolver resume` agree
    assert record.status == "queued" and record.holder is None and record.job_id is None


@pytest.mark.parametrize("skew_minutes", [10, -10])
def test_leases_keep_the_databases_time_whatever_the_clients_clock_says(store, campaign, monkeypatch,
                                                                         skew_minutes):
    """A coordinator whose host clock runs 10 minutes ahead must not take a lease that is live
    (one behind must not hold one for 10 minutes too long): expiry is written and compared on
    the database's clock."""
    live = Lease(seconds=60, holder="live")
    lifecycle.claim(store, campaign, live)
    real_now = store_module._now
    monkeypatch.setattr(store_module, "_now", lambda: real_now() + timedelta(minutes=skew_minutes))
    with pytest.raises(CampaignBusy, match="live"):
        lifecycle.claim(store, campaign, Lease(holder="skewed"))
    with pytest.raises(CampaignBusy):
        lifecycle.reopen(store, campaign)
    assert lifecycle.renew(store, campaign, live) == "running"
    assert 55 < store.lease_seconds_left(campaign) <= 60  # not 60 +- 600
    lapse_lease(store, campaign)
    assert lifecycle.claim(store, campaign, Lease(holder="skewed")).holder == "skewed"


def test_two_resumes_at_once_one_wins(store, campaign):
    for _ in range(ROUNDS):
        lifecycle.cancel(store, campaign)
        results = race([lambda: lifecycle.reopen(store, campaign).status] * 4)
        assert results.count("queued") == 1, results
        assert all("already queued" in str(r) for r in results if r != "queued"), results


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
