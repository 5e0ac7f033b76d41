"""The store's side of ``ocds-live status``: row counts, the change log's head, progress and recent releases."""

from __future__ import annotations

from typing import Any

from core.store.connection import Connection

TABLES = ("releases", "records", "changes", "rejected")


def counts(conn: Connection) -> dict[str, int]:
    """Rows per table (exact counts)."""
    out = {}
    with conn.cursor() as cur:
        for table in TABLES:
            cur.execute(f"SELECT count(*) FROM {table}")  # our own table names
            row = cur.fetchone()
            out[table] = int(row[0]) if row else 0
    return out


def head(conn: Connection) -> tuple[int, str | None, int]:
    """The change log's newest cursor, when it was written, and how far the relay has published it."""
    with conn.cursor() as cur:
        cur.execute("SELECT last FROM feed_counter WHERE id = 1")
        row = cur.fetchone()
        last = int(row[0]) if row else 0
        cur.execute("SELECT created_at FROM changes WHERE cursor = %s", (last,))
        written = cur.fetchone()
        cur.execute("SELECT last FROM relay_progress WHERE name = 'changes'")
        published = cur.fetchone()
    return last, (written[0].isoformat() if written else None), (int(published[0]) if published else 0)


def projects(conn: Connection) -> tuple[int, int, int]:
    """The store's generation, and its projects: how many are built, how many wait for the project builder."""
    with conn.cursor() as cur:
        cur.execute("SELECT (SELECT generation FROM store_generation WHERE id = 1), "
                    "(SELECT count(*) FROM projects), (SELECT count(*) FROM project_dirty)")
        row = cur.fetchone()
    return (int(row[0] or 1), int(row[1]), int(row[2])) if row else (1, 0, 0)


def processed(conn: Connection) -> dict[str, dict[tuple[str, int], int]]:
    """The next offset to process per consumer group and (topic, partition), as committed with the writes."""
    with conn.cursor() as cur:
        cur.execute("SELECT consumer_group, topic, partition, next_offset FROM consumer_offsets")
        rows = cur.fetchall()
    out: dict[str, dict[tuple[str, int], int]] = {}
    for group, topic, partition, offset in rows:
        out.setdefault(group, {})[(topic, int(partition))] = int(offset)
    return out


def recent_releases(conn: Connection, window: float, limit: int) -> list[tuple[str, int, int, str, float]]:
    """(topic, partition, offset, date, committed at as POSIX time) of the releases stored in the last
    ``window`` seconds, newest first, at most ``limit`` (found through the unique ``seq`` index)."""
    with conn.cursor() as cur:
        cur.execute("SELECT last_release FROM feed_counter WHERE id = 1")
        row = cur.fetchone()
        last = int(row[0]) if row else 0
        cur.execute(
            "SELECT source_topic, source_partition, source_offset, date, extract(epoch FROM received_at) "
            "FROM releases WHERE seq > %s AND received_at > now() - make_interval(secs => %s) "
            "AND source_topic IS NOT NULL ORDER BY seq DESC LIMIT %s",
            (last - limit, window, limit),
        )
        rows: list[Any] = cur.fetchall()
    return [(str(t), int(p), int(o), str(d), float(at)) for t, p, o, d, at in rows]
