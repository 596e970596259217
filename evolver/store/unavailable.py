"""A database that cannot be opened, said in one line: the URL (password masked) and why (not a URL,
an unknown or missing driver, an unreachable server, a SQLite folder that is missing or read-only),
so the CLI and the server can print it instead of a driver's traceback."""

from __future__ import annotations

import os
import re
from pathlib import Path

from alembic.util.exc import CommandError
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from .errors import StoreError

URL_EXAMPLES = "sqlite:///path/to/evolver.db or postgresql+psycopg://user:password@host/database"


class StoreUnavailable(StoreError, RuntimeError):
    """The database could not be opened: one line naming the URL (password masked) and why."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot open the database {masked_url(url)}: {reason}")
        self.url = masked_url(url)
        self.reason = reason


class BadDatabaseUrl(StoreUnavailable, ValueError):
    """The URL itself is wrong: not a URL, an unknown driver, a database evolver does not support."""


def masked_url(url: str) -> str:
    """The URL with its password replaced by ***, also when SQLAlchemy cannot parse it."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(url))


def open_failure(url: str, err: BaseException) -> StoreUnavailable:
    """Why opening `url` failed, in one line a user can act on."""
    if isinstance(err, StoreUnavailable):
        return err
    return (BadDatabaseUrl if isinstance(err, ArgumentError) else StoreUnavailable)(url, _reason(url, err))


def _reason(url: str, err: BaseException) -> str:
    if isinstance(err, NoSuchModuleError):  # before ArgumentError, its base class
        return f"unknown database driver {url.split('://', 1)[0]!r} (use {URL_EXAMPLES})"
    if isinstance(err, ArgumentError):
        return f"not a database URL (expected e.g. {URL_EXAMPLES})"
    if isinstance(err, ImportError):
        return (f"its driver is not installed ({_first_line(err)}); "
                "postgresql+psycopg:// uses psycopg 3, which evolver installs")
    if isinstance(err, CommandError):
        return f"its schema is not one this version of evolver knows ({_first_line(err)})"
    sqlite_problem = _sqlite_path_problem(url)
    if sqlite_problem:
        return sqlite_problem
    original = getattr(err, "orig", None)  # the driver's own error inside SQLAlchemy's wrapper
    return _first_line(original if original is not None else err)


def _sqlite_path_problem(url: str) -> str | None:
    """For a SQLite file: the folder or file that cannot be used, if that is what went wrong."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    folder = path.parent
    if not folder.exists():
        return f"folder {folder} does not exist"
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if path.exists() and not path.is_file():
        return f"{path} is not a file"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"folder {folder} is not writable (SQLite writes its journal beside the file)"
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return f"{path} is not readable and writable"
    return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0].strip() if text else type(err).__name__


# What `Store.open` turns into a StoreUnavailable: the database's and its drivers' errors.
OPEN_ERRORS = (SQLAlchemyError, ImportError, CommandError, OSError, ValueError)
