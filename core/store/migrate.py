"""Apply the schema migrations in ``core/store/migrations`` that the database has not seen yet."""

from __future__ import annotations

import logging
from pathlib import Path

from core.store.connection import Connection, translated_errors
from core.store.locks import MIGRATE_LOCK

logger = logging.getLogger("ocds_live.store")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def pending(conn: Connection) -> list[Path]:
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, "
                    "applied_at timestamptz NOT NULL DEFAULT now())")
        cur.execute("SELECT version FROM schema_migrations")
        done = {row[0] for row in cur.fetchall()}
    return [path for path in sorted(MIGRATIONS.glob("*.sql")) if path.stem not in done]


def migrate(conn: Connection) -> list[str]:
    """Apply every pending migration, each in its own transaction; return the versions applied."""
    applied: list[str] = []
    with translated_errors():
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK,))
        try:
            conn.commit()
            for path in pending(conn):
                with conn.cursor() as cur:
                    cur.execute(path.read_text(encoding="utf-8"))
                    cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (path.stem,))
                conn.commit()
                logger.info("applied migration %s", path.stem)
                applied.append(path.stem)
            conn.commit()
        finally:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK,))
            conn.commit()
    return applied
