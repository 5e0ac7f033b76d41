"""Reads of projects for the feed server and the tests. Every function takes an open connection and commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from core.store.writer import unaccent


def page(conn: Any, after_seq: int, limit: int, q: str | None = None, status: str | None = None,
         ocid: str | None = None, overview: bool = False) -> list[tuple[int, dict[str, Any], datetime]]:
    """Projects in order of their last write after ``after_seq``: (seq, OC4IDS project, updated_at); with
    ``overview``, instead of the project its id and what the list page shows (``core.projects.figures``).

    ``q`` matches words of the title, the public authority or the id (no accents, any case); ``status`` the
    project's status; ``ocid`` the project that process belongs to."""
    where: list[str] = ["p.seq > %s"]
    args: list[Any] = [after_seq]
    for word in unaccent(q or "").lower().split():
        where.append("p.search LIKE %s")
        args.append(f"%{word.replace('%', '').replace('_', '')}%")
    if status:
        where.append("p.status = %s")
        args.append(status)
    if ocid:
        where.append("p.id = (SELECT m.project_id FROM project_members m WHERE m.ocid = %s)")
        args.append(ocid)
    with conn.cursor() as cur:
        column = "jsonb_build_object('id', p.id) || p.overview" if overview else "p.data"
        cur.execute(f"SELECT p.seq, {column}, p.updated_at FROM projects p WHERE {' AND '.join(where)} "  # noqa: S608
                    "ORDER BY p.seq LIMIT %s", (*args, limit))
        rows = cur.fetchall()
    conn.commit()
    return [(int(seq), data if isinstance(data, dict) else orjson.loads(data), updated) for seq, data, updated in rows]


def project(conn: Any, pid: str) -> tuple[dict[str, Any], datetime] | None:
    with conn.cursor() as cur:
        cur.execute("SELECT data, updated_at FROM projects WHERE id = %s", (pid,))
        row = cur.fetchone()
    conn.commit()
    return (orjson.loads(row[0]), row[1]) if row else None


def overview(conn: Any, pid: str) -> dict[str, Any] | None:
    """What the project page shows: figures, supplied fields, and each process's summary (one snapshot)."""
    with conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cur.execute("SELECT id, publisher, local_id, overview::text, supplied::text, supplied_by, updated_at, "
                    "data FROM projects WHERE id = %s", (pid,))
        row = cur.fetchone()
        if row is None:
            conn.commit()
            return None
        cur.execute("SELECT r.ocid, r.summary::text, r.date, r.release_count FROM project_members m "
                    "JOIN records r ON r.ocid = m.ocid WHERE m.project_id = %s ORDER BY r.date NULLS LAST, r.ocid",
                    (pid,))
        processes = [{"ocid": o, "summary": orjson.loads(s), "date": d, "releases": n} for o, s, d, n in cur.fetchall()]
    conn.commit()
    project_data = orjson.loads(row[7])
    return {
        "id": row[0], "publisher": row[1], "local_id": row[2], "figures": orjson.loads(row[3]),
        "supplied": orjson.loads(row[4]), "supplied_by": row[5], "updated_at": row[6].isoformat(),
        "title": project_data.get("title"), "description": project_data.get("description"),
        "sector": project_data.get("sector"), "type": project_data.get("type"),
        "processes": processes,
    }
