"""Reads the feed server, the consumers and the tests share. Every function takes an open connection."""

from __future__ import annotations

from typing import Any

import orjson

Cursor = Any


def _one_snapshot(cur: Cursor) -> None:
    """Make the rest of this transaction read one snapshot: a record and its release list must agree.

    Under READ COMMITTED each statement sees its own snapshot, so a release committed between the
    record's row and its release list would be listed with a compiled release that does not contain it.
    """
    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


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
        _one_snapshot(cur)
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
        "versioned": orjson.loads(row[1]) if row[1] is not None else None,
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


def releases_page(conn: Any, after_seq: int, limit: int, since: str | None = None) -> list[tuple[int, dict[str, Any]]]:
    """Releases in commit order after ``after_seq`` (optionally with date >= ``since``), with their seq."""
    with conn.cursor() as cur:
        if since:
            cur.execute("SELECT seq, data::text FROM releases WHERE seq > %s AND date >= %s ORDER BY seq LIMIT %s",
                        (after_seq, since, limit))
        else:
            cur.execute("SELECT seq, data::text FROM releases WHERE seq > %s ORDER BY seq LIMIT %s",
                        (after_seq, limit))
        rows = cur.fetchall()
    conn.commit()
    return [(int(seq), orjson.loads(data)) for seq, data in rows]


def records_page(conn: Any, after_seq: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
    """Records in order of their last write after ``after_seq``: ocid, compiled release, release list."""
    with conn.cursor() as cur:
        _one_snapshot(cur)
        cur.execute("SELECT seq, ocid, compiled::text, updated_at FROM records WHERE seq > %s ORDER BY seq LIMIT %s",
                    (after_seq, limit))
        rows = cur.fetchall()
        ocids = [r[1] for r in rows]
        cur.execute("SELECT ocid, release_id, date, tags FROM releases WHERE ocid = ANY(%s) ORDER BY date, release_id",
                    (ocids,))
        by_ocid: dict[str, list[dict[str, Any]]] = {}
        for ocid, rid, date, tags in cur.fetchall():
            by_ocid.setdefault(ocid, []).append({"id": rid, "date": date, "tag": list(tags)})
    conn.commit()
    return [
        (int(seq), {"ocid": ocid, "compiled": orjson.loads(compiled), "releases": by_ocid.get(ocid, []),
                    "updated_at": updated})
        for seq, ocid, compiled, updated in rows
    ]


def rejected_page(conn: Any, after: int, limit: int, publisher: str | None) -> list[dict[str, Any]]:
    """Rejected releases after id ``after``, oldest first, optionally of one publisher."""
    query = ("SELECT id, publisher, ocid, release_id, findings::text, raw, source_topic, source_partition, "
             "source_offset, received_at FROM rejected WHERE id > %s")
    args: list[Any] = [after]
    if publisher:
        query += " AND publisher = %s"
        args.append(publisher)
    query += " ORDER BY id LIMIT %s"
    args.append(limit)
    with conn.cursor() as cur:
        cur.execute(query, args)
        rows = cur.fetchall()
    conn.commit()
    out = []
    for rid, pub, ocid, release_id, findings, raw, topic, partition, offset, received in rows:
        body = bytes(raw)
        try:
            text: str | None = body[:2000].decode("utf-8")
        except UnicodeDecodeError:
            text = None
        out.append({
            "id": rid, "publisher": pub, "ocid": ocid, "release_id": release_id, "findings": orjson.loads(findings),
            "source": {"topic": topic, "partition": partition, "offset": offset},
            "received_at": received.isoformat(), "size": len(body), "excerpt": text,
        })
    return out
