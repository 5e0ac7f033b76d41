"""Reads the feed server, the consumers and the tests share. Every function takes an open connection."""

from __future__ import annotations

from typing import Any

import orjson

Cursor = Any


def head(conn: Any) -> int:
    """The newest committed change cursor (0 when the log is empty)."""
    with conn.cursor() as cur:
        cur.execute("SELECT last FROM feed_counter WHERE id = 1")
        row = cur.fetchone()
    conn.commit()
    return int(row[0]) if row else 0


def changes_after(conn: Any, after: int, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` change events with cursor > ``after``, in cursor order."""
    with conn.cursor() as cur:
        cur.execute("SELECT event::text FROM changes WHERE cursor > %s ORDER BY cursor LIMIT %s", (after, limit))
        rows = cur.fetchall()
    conn.commit()
    return [orjson.loads(r[0]) for r in rows]


def first_cursor(conn: Any) -> int | None:
    with conn.cursor() as cur:
        cur.execute("SELECT min(cursor) FROM changes")
        row = cur.fetchone()
    conn.commit()
    return int(row[0]) if row and row[0] is not None else None


def record(conn: Any, ocid: str) -> dict[str, Any] | None:
    """The stored record for ``ocid``: compiled, versioned, and its releases' ids, dates and tags."""
    with conn.cursor() as cur:
        cur.execute("SELECT compiled::text, versioned::text, updated_at FROM records WHERE ocid = %s", (ocid,))
        row = cur.fetchone()
        if row is None:
            conn.commit()
            return None
        cur.execute("SELECT release_id, date, tags FROM releases WHERE ocid = %s ORDER BY date, release_id",
                    (ocid,))
        releases = [{"id": r[0], "date": r[1], "tag": list(r[2])} for r in cur.fetchall()]
    conn.commit()
    return {
        "ocid": ocid,
        "compiled": orjson.loads(row[0]),
        "versioned": orjson.loads(row[1]),
        "updated_at": row[2],
        "releases": releases,
    }


def release(conn: Any, ocid: str, release_id: str) -> dict[str, Any] | None:
    with conn.cursor() as cur:
        cur.execute("SELECT data::text FROM releases WHERE ocid = %s AND release_id = %s", (ocid, release_id))
        row = cur.fetchone()
    conn.commit()
    return orjson.loads(row[0]) if row else None


def compiled(conn: Any, ocid: str) -> dict[str, Any] | None:
    """The record's current compiled release."""
    with conn.cursor() as cur:
        cur.execute("SELECT compiled::text FROM records WHERE ocid = %s", (ocid,))
        row = cur.fetchone()
    conn.commit()
    return orjson.loads(row[0]) if row else None
