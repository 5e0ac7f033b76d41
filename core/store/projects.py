"""Projects in the store: membership, rebuilds inside the writer's transaction, project change events.

:func:`follow` is what the stream processor calls once per batch, after saving its records and before
appending their change events: it moves the batch's processes between projects (``project_members``),
names each change event's project (``summary.project``), and rebuilds every project the batch touched
**once** (a batch with 50 processes of one project rebuilds it once). :func:`supply` stores the
project-level fields of ``POST /api/projects/{id}`` and the operators' projects file, and rebuilds the same
way. A rebuild whose project comes out identical writes nothing; otherwise it writes the project and
appends one ``project.updated`` event to the change log, with the changed fields' JSON Pointer paths, old
and new values, and the digests of the project before and after (``summary.previous`` /
``summary.digest``: each project's events form a chain a test can check for lost or repeated changes).

Locking: both paths take the ``feed_counter`` row lock (the processor through ``writer.allocate``, earlier
in its transaction) before they lock a project, so project rebuilds are serialised with every writer and
read the other members' records as committed.
"""

from __future__ import annotations

import functools
import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import orjson
from psycopg2.extras import execute_values

from core.changes import diff
from core.exceptions import SchemaUnavailableError, StoreUnavailableError
from core.merge import MergedRecord
from core.oc4ids import Oc4idsSchema, cached_oc4ids_schema
from core.projects import (
    Member,
    ProjectFieldsError,
    build,
    conform,
    digest,
    figures,
    linked_releases,
    local_project_id,
    project_id,
    project_prefix,
    read_project_prefixes,
    read_projects_file,
)
from core.settings import Settings
from core.store import writer
from core.types import Release

Cursor = Any
KIND = "project.updated"


class _Stored(Protocol):
    """An accepted release as the processor stores it."""

    @property
    def release(self) -> Release: ...
    @property
    def publisher(self) -> str | None: ...


@functools.lru_cache(maxsize=4)
def _prefixes(path: Path, mtime_ns: int) -> dict[str, str]:
    return read_project_prefixes(path)


def prefixes(path: Path) -> dict[str, str]:
    """The publishers' project prefixes, read again only when the publishers file changes."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return {}
    return _prefixes(path, mtime)


@dataclass(frozen=True)
class Cause:
    """What made a project change: the newest release among its members' new releases (or none)."""

    release_id: str = ""
    date: str = ""
    publisher: str | None = None


def follow(cur: Cursor, settings: Settings, records: Mapping[str, MergedRecord], stored: Sequence[_Stored],
           events: list[dict[str, Any]]) -> int:
    """Bring the projects of the batch's processes up to date; returns the number of project changes.

    ``records`` are the batch's merged records (saved), ``stored`` its accepted releases, ``events`` its
    change events, not yet appended: each gets ``summary.project`` when its process belongs to one.
    """
    if not records:
        return 0
    publisher_of = {a.release["ocid"]: a.publisher for a in stored}
    cause: dict[str, Cause] = {}
    for a in stored:
        cause[a.release["ocid"]] = max(cause.get(a.release["ocid"], Cause()), Cause(a.release["id"], a.release["date"],
                                                                                   a.publisher),
                                       key=lambda c: (c.date, c.release_id))
    ocids = sorted(records)
    cur.execute("SELECT ocid, project_id, publisher FROM project_members WHERE ocid = ANY(%s) ORDER BY ocid FOR UPDATE",
                (ocids,))
    old = {ocid: (pid, pub) for ocid, pid, pub in cur.fetchall()}
    known = prefixes(settings.publishers_file)
    now: dict[str, tuple[str, str, str] | None] = {}  # ocid -> (project id, publisher, local id)
    for ocid in ocids:
        local = local_project_id(records[ocid].compiled)
        publisher = publisher_of.get(ocid) or (old[ocid][1] if ocid in old else None) or "unknown"
        now[ocid] = (project_id(project_prefix(publisher, known), local), publisher, local) if local else None
    gone = [ocid for ocid in ocids if ocid in old and now[ocid] is None]
    if gone:
        cur.execute("DELETE FROM project_members WHERE ocid = ANY(%s)", (gone,))
    _save_members(cur, {ocid: (n[0], n[1], records[ocid].compiled) for ocid, n in now.items() if n is not None})
    for event in events:
        found = now.get(event["ocid"])
        if found is not None and isinstance(event.get("summary"), dict):
            event["summary"]["project"] = found[0]
    touched: dict[str, Cause] = {}
    owners: dict[str, tuple[str, str]] = {}
    for ocid in ocids:
        found = now[ocid]
        pids = {found[0]} if found else set()
        if ocid in old and (found is None or old[ocid][0] != found[0]):
            pids.add(old[ocid][0])  # it left that project
        for pid in pids:
            here = cause.get(ocid, Cause())
            touched[pid] = max(touched.get(pid, here), here, key=lambda c: (c.date, c.release_id))
        if found:
            owners.setdefault(found[0], (found[1], found[2]))
    return rebuild(cur, settings, touched, {o: r.compiled for o, r in records.items()}, owners)


def _save_members(cur: Cursor, members: Mapping[str, tuple[str, str, Release]]) -> None:
    """Upsert the membership rows of ``members`` (ocid -> project id, publisher, current compiled release),
    with their releases' ids, dates and tags (this batch's included: they are stored before)."""
    if not members:
        return
    releases: dict[str, list[tuple[str, str, list[str]]]] = defaultdict(list)
    cur.execute("SELECT ocid, release_id, date, tags FROM releases WHERE ocid = ANY(%s)", (sorted(members),))
    for ocid, rid, date, tags in cur.fetchall():
        releases[ocid].append((rid, date, list(tags)))
    rows = [(ocid, pid, publisher, writer.json_text(compiled), writer.json_text(sorted(releases[ocid])))
            for ocid, (pid, publisher, compiled) in sorted(members.items())]
    execute_values(cur, "INSERT INTO project_members (ocid, project_id, publisher, compiled, releases) VALUES %s "
                   "ON CONFLICT (ocid) DO UPDATE SET project_id = EXCLUDED.project_id, publisher = EXCLUDED.publisher, "
                   "compiled = EXCLUDED.compiled, releases = EXCLUDED.releases", rows, page_size=len(rows))


def _members(cur: Cursor, pids: list[str], known: Mapping[str, Release], base_url: str) -> dict[str, list[Member]]:
    """Each project's members: compiled releases (``known`` ones as given, the others as their membership rows
    keep them) and linked releases."""
    cur.execute("SELECT project_id, ocid, CASE WHEN ocid = ANY(%s) THEN NULL ELSE compiled END, releases "
                "FROM project_members WHERE project_id = ANY(%s) ORDER BY ocid", (list(known), pids))
    out: dict[str, list[Member]] = defaultdict(list)
    for pid, ocid, compiled, releases in cur.fetchall():
        # the batch's own records (``known``) stay the caller's; those read here are the members' own
        mine = compiled is not None
        out[pid].append(Member(ocid, orjson.loads(compiled) if mine else known[ocid],
                               linked_releases(base_url, ocid, orjson.loads(releases)), owned=mine))
    return out


def project_url(base_url: str, pid: str) -> str:
    return f"{base_url}/api/projects/{quote(pid, safe='')}"


def rebuild(cur: Cursor, settings: Settings, touched: Mapping[str, Cause],
            known: Mapping[str, Release], owners: Mapping[str, tuple[str, str]],
            supplied: Mapping[str, tuple[dict[str, Any], str]] | None = None) -> int:
    """Rebuild the projects ``touched`` (each once) and write those that changed, with their events.

    ``known``: current compiled releases the caller has (the others are read from the store); ``owners``:
    (publisher, local id) of projects that may be new; ``supplied``: new supplied fields and who supplied
    them. Returns the number of change events appended.
    """
    pids = sorted(touched)
    if not pids:
        return 0
    base_url = settings.base_url
    try:
        oc4ids = cached_oc4ids_schema(settings.oc4ids_dir, settings.cache_dir)
    except SchemaUnavailableError as exc:  # the batch waits and is retried, as when the store is down
        raise StoreUnavailableError(f"projects cannot be built without the OC4IDS schema: {exc}") from exc
    cur.execute("SELECT id, data, digest, supplied::text FROM projects WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                (pids,))
    stored = {pid: (orjson.loads(data), dig, orjson.loads(fields)) for pid, data, dig, fields in cur.fetchall()}
    members = _members(cur, pids, known, base_url)
    writes, events = [], []
    for pid in pids:
        old_project, old_digest, fields = stored.get(pid, (None, None, {}))
        if supplied and pid in supplied:
            fields = supplied[pid][0]
        group = members.get(pid, [])
        if old_project is None and not group and not (supplied and pid in supplied):
            continue  # a project nobody belongs to, and no row to keep
        project, removed = conform(build(pid, group, fields), oc4ids)
        new_digest = digest(project)
        if new_digest == old_digest and not (supplied and pid in supplied):
            continue
        overview = {**figures(project, group), "removed": removed[:100]}
        writes.append((pid, project, new_digest, fields, overview, len(group)))
        if new_digest != old_digest:
            events.append(_event(pid, old_project, project, old_digest, new_digest, touched[pid], overview, base_url))
    if not writes:
        return 0
    numbers = writer.allocate(cur, len(events), 0, len(writes))
    _save(cur, writes, numbers.record, owners, supplied or {})
    _append(cur, events, numbers.change)
    return len(events)


def _event(pid: str, old: dict[str, Any] | None, new: dict[str, Any], old_digest: str | None, new_digest: str,
           cause: Cause, overview: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    when = cause.date or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "id": hashlib.sha256(f"{pid}\n{old_digest}\n{new_digest}".encode()).hexdigest()[:32],
        "ocid": pid,
        "release_id": cause.release_id,
        "date": when,
        "tags": [],
        "publisher": cause.publisher,
        "kind": KIND,
        "kinds": [KIND],
        "summary": {
            "project": pid, "title": overview.get("title"), "status": overview.get("status"),
            "public_authority": overview.get("public_authority"), "processes": overview.get("processes"),
            "previous": old_digest, "digest": new_digest,
        },
        "changes": orjson.Fragment(orjson.dumps(diff(old or {}, new))),
        "record_url": project_url(base_url, pid),
    }


_COLUMNS = ("id", "publisher", "local_id", "data", "digest", "supplied", "supplied_by", "overview", "title",
            "authority", "status", "members", "search", "seq")
_KEPT = {"publisher", "local_id", "id", "supplied_by"}
_UPSERT = (
    f"INSERT INTO projects ({', '.join(_COLUMNS)}) VALUES %s ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS if c not in _KEPT)
    + ", supplied_by = COALESCE(EXCLUDED.supplied_by, projects.supplied_by), updated_at = now()"
)


def _save(cur: Cursor, writes: list[tuple[Any, ...]], first_seq: int, owners: Mapping[str, tuple[str, str]],
          supplied: Mapping[str, tuple[dict[str, Any], str]]) -> None:
    rows = []
    for seq, (pid, project, dig, fields, overview, count) in enumerate(writes, start=first_seq):
        publisher, local = owners.get(pid, ("", pid))
        title, authority = overview.get("title"), (overview.get("public_authority") or {}).get("name")
        words = (title, authority, pid, *overview.get("buyers", ()))
        search = writer.unaccent(" ".join(str(v) for v in words if v)).lower()
        rows.append((pid, publisher, local, writer.json_text(project), dig, writer.json_text(fields),
                     supplied[pid][1] if pid in supplied else None, writer.json_text(overview), title, authority,
                     overview.get("status"), count, search, seq))
    execute_values(cur, _UPSERT, rows, page_size=len(rows),
                   template="(%s, %s, %s, %s, %s, %s::jsonb, %s, %s::jsonb, %s, %s, %s, %s, %s, %s)")


def _append(cur: Cursor, events: list[dict[str, Any]], first: int) -> None:
    """The project events, with the cursors ``first``, ``first + 1``, ..., indexed under ('project', id)."""
    if not events:
        return
    rows, keys = [], []
    for cursor, event in enumerate(events, start=first):
        event["cursor"] = cursor
        rows.append((cursor, event["ocid"], event["release_id"], event["kind"], writer.json_text(event)))
        keys += [(field, value, cursor) for field, value in writer.change_keys(event["summary"])]  # its project
    execute_values(cur, "INSERT INTO changes (cursor, ocid, release_id, kind, event) VALUES %s", rows,
                   page_size=len(rows))
    execute_values(cur, "INSERT INTO change_keys (field, value, cursor) VALUES %s ON CONFLICT DO NOTHING", keys,
                   page_size=len(keys))
    cur.execute("NOTIFY ocds_changes")


def supply(conn: Any, pid: str, publisher: str, local: str, fields: dict[str, Any], supplied_by: str,
           settings: Settings) -> bool:
    """Store supplied project-level fields for ``pid`` (replacing earlier ones) and rebuild it, in one
    transaction. Returns whether the project changed."""
    with conn.cursor() as cur:
        cur.execute("SELECT last FROM feed_counter WHERE id = 1 FOR UPDATE")  # the writers' lock order
        changed = rebuild(cur, settings, {pid: Cause(publisher=publisher)}, {}, {pid: (publisher, local)},
                          {pid: (fields, supplied_by)})
    conn.commit()
    return changed > 0


def apply_file(conn: Any, settings: Settings, schema: Oc4idsSchema) -> list[tuple[str, str]]:
    """Supply the fields of the operators' projects file (``settings.projects_file``): every entry is checked
    against the OC4IDS project schema first (nothing is applied when one fails), then each project whose stored
    fields differ gets them. Returns (project id, "changed" / "stored" / "unchanged") per entry."""
    entries = read_projects_file(settings.projects_file)
    known = prefixes(settings.publishers_file)
    plans = []
    for entry in entries:
        pid = project_id(project_prefix(entry.publisher, known), entry.local_id)
        errors = schema.project_errors({**entry.fields, "id": pid})
        if errors:
            raise ProjectFieldsError(f"{settings.projects_file}: {pid}: {'; '.join(errors[:5])}")
        plans.append((pid, entry))
    out = []
    for pid, entry in plans:
        with conn.cursor() as cur:
            cur.execute("SELECT supplied::text FROM projects WHERE id = %s", (pid,))
            row = cur.fetchone()
        conn.commit()
        if row is not None and orjson.loads(row[0]) == entry.fields:
            out.append((pid, "unchanged"))
            continue
        changed = supply(conn, pid, entry.publisher, entry.local_id, entry.fields, "operator", settings)
        out.append((pid, "changed" if changed else "stored"))
    return out
