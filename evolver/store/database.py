"""Opening a database: engine settings per backend, and bringing the schema to Alembic's head.

The schema is only ever created by the migrations (never `metadata.create_all`), so a database
made by any release upgrades the same way a fresh one is built.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import Connection

from .unavailable import URL_EXAMPLES, BadDatabaseUrl

SUPPORTED_BACKENDS = ("sqlite", "postgresql")
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Execution option that marks a transaction as one that will write (see `_begin_sqlite`).
WRITE_OPTION = "evolver_write"

# Any constant works; it keeps two processes from migrating the same PostgreSQL database at once.
_MIGRATION_LOCK_KEY = 0x65766F6C  # "evol"

# libpq waits for an unreachable server as long as TCP does (minutes); a URL may set its own.
POSTGRES_CONNECT_TIMEOUT_SECONDS = 10
_LIBPQ_DRIVERS = ("psycopg", "psycopg2")


def sqlite_url(path: str | Path) -> str:
    """SQLAlchemy URL of a SQLite file (absolute, so the working directory does not matter)."""
    return f"sqlite:///{Path(path).expanduser().resolve()}"


def create_store_engine(url: str) -> Engine:
    """An engine with our per-backend settings (SQLite: WAL, foreign keys, explicit BEGIN)."""
    parsed = make_url(url)
    if parsed.get_backend_name() not in SUPPORTED_BACKENDS:
        raise BadDatabaseUrl(url, f"unsupported database {parsed.get_backend_name()!r}; "
                                  f"use one of {', '.join(SUPPORTED_BACKENDS)} (e.g. {URL_EXAMPLES})")
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed)
        event.listen(engine, "connect", _configure_sqlite_connection)
        event.listen(engine, "begin", _begin_sqlite)
        return engine
    connect_args = {}
    if parsed.get_driver_name() in _LIBPQ_DRIVERS and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_SECONDS
    return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)


def _configure_sqlite_connection(dbapi_connection, _record) -> None:
    """Per-connection SQLite settings.

    WAL lets the dashboard read while the coordinator writes; synchronous=NORMAL is durable in WAL
    mode except for the last transactions before a power cut (never corruption), and saves an
    fsync per commit, which is most of a small transaction's cost. SQLite ignores foreign keys
    unless told per connection. The driver's own implicit BEGIN (only before DML) is switched off
    so that a transaction covers its reads too; `_begin_sqlite` emits BEGIN instead.
    """
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
    finally:
        cursor.close()


def _begin_sqlite(connection: Connection) -> None:
    """Writers take the write lock up front (BEGIN IMMEDIATE): a deferred transaction that reads,
    then finds another process committed first, cannot upgrade to writing and fails at once."""
    write = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def upgrade_to_head(engine: Engine) -> None:
    """Run `alembic upgrade head` on this engine, in one transaction."""
    config = Config()
    # ConfigParser interpolates '%'; a path holding one must be escaped.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
