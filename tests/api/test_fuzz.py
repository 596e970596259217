"""Fuzzing every endpoint from the app's own OpenAPI schema (schemathesis + hypothesis): no request,
however malformed, gets a 5xx, and a rejected request changes nothing in SQL.

The app runs with the queue launcher (accepted campaigns stay queued: fuzzed specs must not train
anything on this machine) over SQLite, with one queued campaign so that id 1 exists.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from api.app import create_app  # noqa: E402
from evolver.store import Store  # noqa: E402
from tests.api.helpers import api_settings, running_app, sleep_spec  # noqa: E402

SCHEMA = schemathesis.openapi.from_dict(create_app().openapi())


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    settings = api_settings(tmp_path_factory.mktemp("fuzz"))
    with running_app(settings, launcher="queue") as (client, _):
        assert client.post("/campaigns", json=sleep_spec()).status_code == 201
        with Store.open(settings.database_url()) as store:
            yield client, store


def snapshot(store: Store) -> list:
    return [(c.id, c.status, c.job_id, c.spec) for c in store.campaigns()]


@SCHEMA.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_5xx_and_no_change_when_rejected(case, fuzz_app):
    client, store = fuzz_app
    before = snapshot(store)
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    kwargs.pop("allow_redirects", None)
    if not kwargs.get("cookies"):
        kwargs.pop("cookies", None)
    if "data" in kwargs and not isinstance(kwargs["data"], dict):
        kwargs["content"] = kwargs.pop("data")
    response = client.request(**kwargs)
    assert response.status_code < 500, (kwargs, response.text)
    if response.status_code >= 400:
        assert snapshot(store) == before, (kwargs, response.status_code)
