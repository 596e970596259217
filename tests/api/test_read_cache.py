"""The short read cache: repeated GETs within the ttl are served from memory, a write through the
API empties it at once, and the ttl bounds how stale a read can be."""

from __future__ import annotations

import time

from evolver.store import Store
from tests.api.helpers import api_settings, running_app, sleep_spec


def test_reads_are_cached_for_the_ttl_and_a_write_empties_the_cache(tmp_path):
    settings = api_settings(tmp_path, read_cache_seconds=1.5)
    with running_app(settings, launcher="queue") as (client, _):
        cid = client.post("/campaigns", json=sleep_spec()).json()["id"]
        first = client.get(f"/campaigns/{cid}").json()
        assert first["status"] == "queued"
        store = Store.open(settings.database_url())
        store.transition_campaign(cid, from_statuses=None, status="running")  # written behind the API's back, as a coordinator does
        assert client.get(f"/campaigns/{cid}").json()["status"] == "queued"  # still the cached answer
        assert client.get(f"/campaigns/{cid}?x=1").json()["status"] == "running"  # another URL: fresh
        time.sleep(1.6)
        assert client.get(f"/campaigns/{cid}").json()["status"] == "running"  # the ttl bounds staleness
        store.transition_campaign(cid, from_statuses=None, status="queued")
        assert client.get(f"/campaigns/{cid}").json()["status"] == "running"  # cached again
        assert client.post(f"/campaigns/{cid}/cancel").status_code == 200  # a write through the API...
        assert client.get(f"/campaigns/{cid}").json()["status"] == "cancelled"  # ...is seen at once
        store.close()


def test_ttl_zero_turns_the_cache_off(tmp_path):
    settings = api_settings(tmp_path, read_cache_seconds=0.0)
    with running_app(settings, launcher="queue") as (client, _):
        cid = client.post("/campaigns", json=sleep_spec()).json()["id"]
        client.get(f"/campaigns/{cid}")
        store = Store.open(settings.database_url())
        store.transition_campaign(cid, from_statuses=None, status="running")
        assert client.get(f"/campaigns/{cid}").json()["status"] == "running"
        store.close()
