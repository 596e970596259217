"""Helpers for the API tests: settings on a temp folder, the real app run for a block, waiting for
a campaign, a dry-run spec.

Campaigns in the REST tests run for real: a `ThreadLauncher` runs the real coordinator in a thread
on a local Ray; the dry-run trainer (`trainer: sleep`) keeps trials under a second.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from api.launcher import QueueLauncher, ThreadLauncher
from api.settings import ApiSettings
from evolver.store import Store

ENDED = ("completed", "failed", "cancelled")


def api_settings(root: Path, db_url: str | None = None, **overrides) -> ApiSettings:
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    return ApiSettings(db_url=db_url or Store.sqlite_url(root / "evolver.db"), project_dir=root / "runs",
                       data_roots=[data], **{"api_token": None, "read_cache_seconds": 0.0, **overrides})


@contextmanager
def running_app(settings: ApiSettings, launcher: str = "thread") -> Iterator[tuple[TestClient, object]]:
    """(client, launcher) of an app whose lifespan runs for the block."""
    made = {}

    def factory(s: ApiSettings, db_url: str):
        made["launcher"] = ThreadLauncher(db_url, poll_seconds=0.1) if launcher == "thread" else QueueLauncher()
        return made["launcher"]

    with TestClient(create_app(settings, launcher=factory)) as client:
        yield client, made["launcher"]


def wait_for(client: TestClient, campaign_id: int, statuses=ENDED, timeout: float = 60.0,
             headers: dict | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/campaigns/{campaign_id}", headers=headers).json()
        if body["status"] in statuses:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"campaign {campaign_id} still {body['status']} after {timeout}s: {body}")
        time.sleep(0.2)


def sleep_spec(**fields) -> dict:
    """A dry-run campaign: real coordinator, GA and SQL; the workers sleep instead of training."""
    return {"name": "dry", "trainer": "sleep", "generations": 3, "population": 2, "epochs": 2,
            "cpu_workers": 2, "sync": False, **fields}
