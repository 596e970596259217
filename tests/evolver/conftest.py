"""Fixtures for evolver tests: a store on SQLite and on PostgreSQL (each test runs on both). The
PostgreSQL server fixtures (`postgres_server`, `postgres_url`) live in tests/conftest.py, shared
with tests/api."""

from __future__ import annotations

import pytest

from evolver.store import Store


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        (tmp_path / "run").mkdir()
        return Store.sqlite_url(tmp_path / "run" / "evolver.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url):
    with Store.open(store_url) as opened:
        yield opened
