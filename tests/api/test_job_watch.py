"""The Ray-job watcher's decision, on real SQL (no Ray needed for it): a job that ended fails its
campaign only once nobody holds the campaign, and keeps being watched until that is settled."""

from __future__ import annotations

import time

from api.launcher import RayJobLauncher
from evolver import lifecycle
from evolver.lifecycle import Lease
from evolver.store import Store


def test_a_job_whose_coordinator_died_holding_the_lease_fails_the_campaign_once_it_lapses(tmp_path):
    url = Store.sqlite_url(tmp_path / "evolver.db")
    with Store.open(url) as store:
        cid = store.create_campaign("c", {"population": 1}, str(tmp_path))
        lifecycle.set_job(store, cid, "raysubmit_1")
        lifecycle.claim(store, cid, Lease(seconds=0.5, holder="killed-with-its-job"))
        watcher = RayJobLauncher(url)
        assert not watcher._job_ended(cid, "raysubmit_1", "FAILED", "node lost")  # held: look again later
        assert store.campaign(cid).status == "running"
        time.sleep(0.7)
        assert watcher._job_ended(cid, "raysubmit_1", "FAILED", "node lost")
        record = store.campaign(cid)
        assert record.status == "failed" and "raysubmit_1 ended FAILED" in record.error and "node lost" in record.error


def test_a_job_refused_while_another_coordinator_runs_the_campaign_changes_nothing(tmp_path):
    url = Store.sqlite_url(tmp_path / "evolver.db")
    with Store.open(url) as store:
        cid = store.create_campaign("c", {"population": 1}, str(tmp_path))
        lifecycle.set_job(store, cid, "raysubmit_2")
        cli = Lease(holder="evolver-run-by-hand")
        lifecycle.claim(store, cid, cli)
        watcher = RayJobLauncher(url)
        assert not watcher._job_ended(cid, "raysubmit_2", "FAILED", "campaign is already run by ...")
        lifecycle.release(store, cid, cli, "completed")
        assert watcher._job_ended(cid, "raysubmit_2", "FAILED", "...")  # settled: it ended by itself
        assert store.campaign(cid).status == "completed"
