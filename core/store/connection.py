"""Connections to PostgreSQL, and the one place psycopg2's errors become ours."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from core.exceptions import StoreError, StoreUnavailableError
from core.settings import Settings

Connection = psycopg2.extensions.connection


def embedded_pgdata(settings: Settings) -> Path:
    return settings.data_dir / "pgdata"


def embedded_url(settings: Settings) -> str | None:
    """The URL of the embedded pgserver PostgreSQL if it runs, read from its postmaster.pid."""
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(embedded_pgdata(settings))
    if info is None or not info.is_running():
        return None
    return str(info.get_uri())


def redacted(url: str) -> str:
    """``url`` without its password, to name the server in messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def database_url(settings: Settings) -> str:
    """DATABASE_URL, else the embedded server's URL; fails with what to do when neither exists."""
    if settings.database_url:
        return settings.database_url
    url = embedded_url(settings)
    if url is None:
        raise StoreUnavailableError(
            "PostgreSQL is not running: start it with `ocds-live services up`, or set DATABASE_URL"
        )
    return url


def connect(settings: Settings, *, autocommit: bool = False) -> Connection:
    """A new connection; psycopg2's connection errors become StoreUnavailableError."""
    url = database_url(settings)
    try:
        conn = psycopg2.connect(url, connect_timeout=5, application_name="ocds-live")
    except psycopg2.OperationalError as exc:
        raise StoreUnavailableError(f"cannot connect to PostgreSQL: {str(exc).strip()}") from exc
    conn.autocommit = autocommit
    return conn


@contextmanager
def translated_errors() -> Iterator[None]:
    """Translate psycopg2 errors into the store's own, at the boundary."""
    try:
        yield
    except (psycopg2.OperationalError, psycopg2.InterfaceError, psycopg2.errors.TransactionRollbackError) as exc:
        # unreachable, restarting, or a deadlock/serialization failure: all pass, so retry
        raise StoreUnavailableError(f"PostgreSQL failed: {str(exc).strip()}") from exc
    except psycopg2.Error as exc:
        if type(exc) is psycopg2.DatabaseError and exc.pgcode is None:
            # no SQLSTATE: the client lost the server (psycopg2 raises a bare DatabaseError for a connection that
            # closed in the middle of some statements, as in an immediate shutdown): retry, it is not a refusal
            raise StoreUnavailableError(f"PostgreSQL failed: {str(exc).strip()}") from exc
        raise StoreError(f"PostgreSQL refused: {str(exc).strip()}") from exc
