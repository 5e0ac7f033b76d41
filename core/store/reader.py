"""Reads the feed server, the consumers and the tests share. Every function takes an open connection."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson
import psycopg2.errors

from core.profiles import CompilerSource, compiler_for
from core.types import Release

Cursor = Any


def _one_snapshot(cur: Cursor) -> None:
    """Make the rest of this transaction read one snapshot: a record and its release list must agree.

    Under READ COMMITTED each statement sees its own snapshot, so a release committed between the
    record's row and its release list would be listed with a compiled release that does not contain it.
    """
    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


def up_to_date(cur: Cursor, merger: CompilerSource,
               checkpoints: Sequence[tuple[str, str, int, Sequence[str]]]) -> dict[str, Release]:
    """The current compiled releases of records stored as ``(ocid, compiled JSON, tail_bytes, extensions)`` rows.

    ``records.compiled`` is a checkpoint: the releases stored after it (seq > ``compiled_through``, applied in
    seq order) bring it up to date (see migration 0005). Read the rows and call this in one snapshot, or with
    the records locked.
    """
    behind = [ocid for ocid, _, tail, _ in checkpoints if tail]
    tails: dict[str, list[Release]] = defaultdict(list)
    if behind:
        cur.execute(
            "SELECT t.ocid, t.data FROM records r JOIN releases t ON t.ocid = r.ocid AND t.seq > r.compiled_through "
            "WHERE r.ocid = ANY(%s) ORDER BY t.ocid, t.seq",
            (behind,),
        )
        for ocid, data in cur.fetchall():
            tails[ocid].append(orjson.loads(data))
    return {
        ocid: compiler_for(merger, extensions).catch_up(orjson.loads(compiled), tails.get(ocid, ()))
        for ocid, compiled, _, extensions in checkpoints
    }


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


class Generation(NamedTuple):
    """Which generation of the store this is (migration 0010): its cursors are above ``base``."""

    generation: int
    base: int
    previous_schema: str | None = None
    previous_head: int | None = None
    resume_after: int | None = None


def generation(conn: Any) -> Generation:
    """The store's generation (1, base 0, for a store built in place)."""
    with conn.cursor() as cur:
        cur.execute("SELECT generation, base, previous_schema, previous_head, resume_after "
                    "FROM store_generation WHERE id = 1")
        row = cur.fetchone()
    conn.commit()
    return Generation(*row) if row else Generation(1, 0)


def log_bounds(conn: Any) -> tuple[Generation, int | None]:
    """The store's generation and the first cursor its change log still holds (None: empty), in one snapshot."""
    with conn.cursor() as cur:
        cur.execute("SELECT generation, base, previous_schema, previous_head, resume_after, "
                    "(SELECT min(cursor) FROM changes) FROM store_generation WHERE id = 1")
        row = cur.fetchone()
    conn.commit()
    return Generation(*row[:5]), None if row[5] is None else int(row[5])


def retired_changes_after(conn: Any, schema: str, after: int, upto: int, limit: int) -> list[dict[str, Any]]:
    """Changes of a replaced store's log (kept in ``schema``) with ``after`` < cursor <= ``upto``; [] when the
    schema was dropped."""
    from psycopg2 import sql

    query = sql.SQL("SELECT event::text FROM {}.changes WHERE cursor > %s AND cursor <= %s ORDER BY cursor LIMIT %s")
    try:
        with conn.cursor() as cur:
            cur.execute(query.format(sql.Identifier(schema)), (after, upto, limit))
            rows = cur.fetchall()
    except (psycopg2.errors.UndefinedTable, psycopg2.errors.InvalidSchemaName):
        conn.rollback()
        return []
    conn.commit()
    return [orjson.loads(r[0]) for r in rows]


def first_cursor(conn: Any) -> int | None:
    with conn.cursor() as cur:
        cur.execute("SELECT min(cursor) FROM changes")
        row = cur.fetchone()
    conn.commit()
    return int(row[0]) if row and row[0] is not None else None


def record(conn: Any, ocid: str, merger: CompilerSource) -> dict[str, Any] | None:
    """The stored record for ``ocid``: compiled, versioned, its extensions, and its releases' ids, dates and tags."""
    with conn.cursor() as cur:
        _one_snapshot(cur)
        cur.execute("SELECT compiled::text, tail_bytes, versioned::text, updated_at, extensions FROM records "
                    "WHERE ocid = %s", (ocid,))
        row = cur.fetchone()
        if row is None:
            conn.commit()
            return None
        current = up_to_date(cur, merger, [(ocid, row[0], row[1], row[4])])
        cur.execute("SELECT release_id, date, tags FROM releases WHERE ocid = %s ORDER BY date, release_id",
                    (ocid,))
        releases = [{"id": r[0], "date": r[1], "tag": list(r[2])} for r in cur.fetchall()]
    conn.commit()
    return {
        "ocid": ocid,
        "compiled": current[ocid],
        "versioned": orjson.loads(row[2]) if row[2] is not None else None,
        "updated_at": row[3],
        "extensions": list(row[4]),
        "releases": releases,
    }


def release(conn: Any, ocid: str, release_id: str) -> dict[str, Any] | None:
    return release_with_extensions(conn, ocid, release_id)[0]


def release_with_extensions(conn: Any, ocid: str, release_id: str) -> tuple[dict[str, Any] | None, list[str]]:
    """A stored release and the extensions it was validated and merged with."""
    with conn.cursor() as cur:
        cur.execute("SELECT data::text, extensions FROM releases WHERE ocid = %s AND release_id = %s",
                    (ocid, release_id))
        row = cur.fetchone()
    conn.commit()
    return (orjson.loads(row[0]), list(row[1])) if row else (None, [])


def compiled(conn: Any, ocid: str, merger: CompilerSource) -> dict[str, Any] | None:
    """The record's current compiled release."""
    return compiled_many(conn, [ocid], merger).get(ocid)


def compiled_many(conn: Any, ocids: Sequence[str], merger: CompilerSource) -> dict[str, dict[str, Any]]:
    """The current compiled release of each of ``ocids`` that has a record."""
    with conn.cursor() as cur:
        _one_snapshot(cur)
        cur.execute("SELECT ocid, compiled::text, tail_bytes, extensions FROM records WHERE ocid = ANY(%s)",
                    (list(ocids),))
        current = up_to_date(cur, merger, cur.fetchall())
    conn.commit()
    return current


def releases_page(conn: Any, after_seq: int, limit: int, since: str | None = None,
                  extensions: list[list[str]] | None = None) -> list[tuple[int, dict[str, Any]]]:
    """Releases in commit order after ``after_seq`` (optionally with date >= ``since``), with their seq; the
    extensions of each are appended to ``extensions``, in the same order, when given."""
    with conn.cursor() as cur:
        if since:
            cur.execute("SELECT seq, data::text, extensions FROM releases WHERE seq > %s AND date >= %s "
                        "ORDER BY seq LIMIT %s", (after_seq, since, limit))
        else:
            cur.execute("SELECT seq, data::text, extensions FROM releases WHERE seq > %s ORDER BY seq LIMIT %s",
                        (after_seq, limit))
        rows = cur.fetchall()
    conn.commit()
    if extensions is not None:
        extensions.extend(list(declared) for _, _, declared in rows)
    return [(int(seq), orjson.loads(data)) for seq, data, _ in rows]


def records_page(conn: Any, after_seq: int, limit: int, merger: CompilerSource) -> list[tuple[int, dict[str, Any]]]:
    """Records in order of their last write after ``after_seq``: ocid, compiled release, release list, extensions."""
    with conn.cursor() as cur:
        _one_snapshot(cur)
        cur.execute("SELECT seq, ocid, compiled::text, tail_bytes, updated_at, extensions FROM records "
                    "WHERE seq > %s ORDER BY seq LIMIT %s", (after_seq, limit))
        rows = cur.fetchall()
        current = up_to_date(cur, merger, [(ocid, compiled, tail, ext) for _, ocid, compiled, tail, _, ext in rows])
        cur.execute("SELECT ocid, release_id, date, tags FROM releases WHERE ocid = ANY(%s) ORDER BY date, release_id",
                    (list(current),))
        by_ocid: dict[str, list[dict[str, Any]]] = {}
        for ocid, rid, date, tags in cur.fetchall():
            by_ocid.setdefault(ocid, []).append({"id": rid, "date": date, "tag": list(tags)})
    conn.commit()
    return [
        (int(seq), {"ocid": ocid, "compiled": current[ocid], "releases": by_ocid.get(ocid, []), "updated_at": updated,
                    "extensions": list(ext)})
        for seq, ocid, _, _, updated, ext in rows
    ]


def declared_extensions(conn: Any) -> list[str]:
    """Every extension some stored record is merged with (what a bulk file of all records declares)."""
    with conn.cursor() as cur:
        cur.execute("SELECT DISTINCT u FROM (SELECT DISTINCT extensions FROM records) r, unnest(r.extensions) u "
                    "ORDER BY u")
        rows = cur.fetchall()
    conn.commit()
    return [row[0] for row in rows]


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
