"""Statements the coordinator runs for every trial, executed on the driver's own cursor.

SQLAlchemy's `Connection.execute` spends about 55 µs per statement on SQLite (cache lookup, per-row
parameter processing, result set-up, events) against 3 µs for the driver, and a trial takes eight
such statements. A `PreparedStatement` keeps SQLAlchemy for what it is good at and skips the rest:

- the SQL is a Core statement, compiled once per dialect (placeholders, casts, quoting are the
  dialect's own);
- parameters go through the same type processors SQLAlchemy would apply (JSON, datetimes);
- it runs on the DB-API cursor of the caller's SQLAlchemy `Connection`, so it joins that
  connection's transaction.

Driver errors come out as they are (sqlite3 / psycopg exceptions, subclasses of the DB-API's
`Error`), not wrapped in SQLAlchemy's; the store's hot paths expect none (conflicts are spelt
ON CONFLICT DO NOTHING), so any that does occur is a real fault and propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import ClauseElement


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # every parameter the SQL takes, in placeholder order
    positional: bool  # SQLite: `?` placeholders, a tuple; PostgreSQL: `%(name)s`, a dict
    # Per placeholder: (name, is_literal, literal value, type conversion or None). A literal is
    # a value the statement fixes itself, converted once at compile time.
    slots: tuple[tuple[str, bool, Any, Callable[[Any], Any] | None], ...]


class PreparedStatement:
    """A Core statement run many times: every `bindparam` without a value must be given at each
    execution; values written into the statement (`status == "pending"`) are fixed."""

    def __init__(self, statement: ClauseElement) -> None:
        self._statement = statement
        self._by_dialect: dict[str, _Compiled] = {}

    def scalar(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """The first column of the first row (RETURNING / SELECT), or None when there is no row."""
        with closing(self._run(conn, params)) as cursor:
            row = cursor.fetchone()
        return None if row is None else row[0]

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple]:
        with closing(self._run(conn, params)) as cursor:
            return [tuple(row) for row in cursor.fetchall()]

    def rowcount(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Rows changed by an UPDATE / DELETE without RETURNING."""
        with closing(self._run(conn, params)) as cursor:
            return cursor.rowcount

    def many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """One statement, many parameter rows (executemany); results are not read."""
        if not rows:
            return
        compiled = self._compiled(conn.dialect)
        with closing(conn.connection.cursor()) as cursor:
            cursor.executemany(compiled.sql, [_bind(compiled, row) for row in rows])

    def _run(self, conn: Connection, params: Mapping[str, Any]):
        compiled = self._compiled(conn.dialect)
        cursor = conn.connection.cursor()
        try:
            cursor.execute(compiled.sql, _bind(compiled, params))
        except BaseException:
            cursor.close()
            raise
        return cursor

    def _compiled(self, dialect: Dialect) -> _Compiled:
        found = self._by_dialect.get(dialect.name)
        if found is None:
            found = self._by_dialect[dialect.name] = _compile(self._statement, dialect)
        return found


def _compile(statement: ClauseElement, dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)
    if compiled.post_compile_params:
        raise TypeError("prepared statements cannot expand parameters at execution (IN over a list): "
                        f"spell the condition with or_() instead: {compiled}")
    by_name = {name: bind for bind, name in compiled.bind_names.items()}
    names = tuple(compiled.positiontup) if compiled.positional else tuple(compiled.params)
    slots = []
    for name in names:
        bind = by_name[name]
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if bind.required:  # the caller supplies it at every execution
            slots.append((name, False, None, processor))
        else:  # fixed by the statement itself
            slots.append((name, True, bind.value if processor is None else processor(bind.value), None))
    return _Compiled(sql=str(compiled), names=names, positional=compiled.positional, slots=tuple(slots))


def _bind(compiled: _Compiled, params: Mapping[str, Any]) -> tuple | dict:
    try:
        values = [literal if is_literal else params[name] if convert is None else convert(params[name])
                  for name, is_literal, literal, convert in compiled.slots]
    except KeyError as missing:
        raise KeyError(f"no value for parameter {missing} of: {compiled.sql}") from None
    return tuple(values) if compiled.positional else dict(zip(compiled.names, values))
