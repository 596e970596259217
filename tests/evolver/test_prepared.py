"""Prepared statements: Core statements compiled once per dialect, run on the driver's cursor."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, create_engine, select, update

from evolver.store.models import Base, Campaign
from evolver.store.prepared import PreparedStatement

CAMPAIGNS = Campaign.__table__
NOW = datetime(2026, 11, 30, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'p.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def test_literals_are_fixed_and_parameters_required(engine):
    rename = PreparedStatement(update(CAMPAIGNS).where(CAMPAIGNS.c.id == bindparam("w_id"),
                                                       CAMPAIGNS.c.status == "queued").values(name=bindparam("name")))
    with engine.begin() as conn:
        conn.execute(CAMPAIGNS.insert(), [
            {"name": "a", "status": "queued", "spec": {}, "run_dir": "/r", "created_at": NOW, "updated_at": NOW},
            {"name": "b", "status": "running", "spec": {}, "run_dir": "/r", "created_at": NOW, "updated_at": NOW}])
        assert rename.rowcount(conn, {"w_id": 1, "name": "renamed"}) == 1
        assert rename.rowcount(conn, {"w_id": 2, "name": "renamed"}) == 0  # the literal status guard holds
        with pytest.raises(KeyError, match="'name'"):
            rename.rowcount(conn, {"w_id": 1})
        names = PreparedStatement(select(CAMPAIGNS.c.id, CAMPAIGNS.c.name).where(CAMPAIGNS.c.id >= bindparam("w_id")))
        assert names.rows(conn, {"w_id": 1}) == [(1, "renamed"), (2, "b")]
        assert names.scalar(conn, {"w_id": 3}) is None


def test_in_lists_are_refused_with_the_fix_named(engine):
    statement = PreparedStatement(select(CAMPAIGNS.c.id).where(CAMPAIGNS.c.status.in_(["queued", "running"])))
    with engine.connect() as conn, pytest.raises(TypeError, match="or_"):
        statement.rows(conn, {})
