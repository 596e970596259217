"""Alembic environment: runs migrations on the connection `Store.open` hands over.

`Store.open` puts an open connection into `config.attributes["connection"]` so migrations share
its engine settings (SQLite pragmas). Run from the alembic command line instead, the URL comes
from the `sqlalchemy.url` option.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from evolver.store.models import Base


def _run(connection) -> None:
    # Batch mode lets later revisions alter SQLite tables (it has no ALTER COLUMN).
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=Base.metadata,
                          literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


main()
