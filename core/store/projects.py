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
from core.profiles import CompilerSource
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
from core.store import reader, writer
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
    _save_members(cur, {ocid: (n[0], n[1]) for ocid, n in now.items() if n is not None and old.get(ocid) != n[:2]})
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
    mark(cur, touched, owners)
    return 0


def mark(cur: Cursor, touched: Mapping[str, Cause], owners: Mapping[str, tuple[str, str]]) -> None:
    """Mark the ``touched`` projects for the builder, at this transaction's version (feed_counter.last_record,
    whose lock the writer holds), keeping the newest cause of each."""
    if not touched:
        return
    rows = [(pid, c.release_id, c.date, c.publisher, *owners.get(pid, (None, None)))
            for pid, c in sorted(touched.items())]
    execute_values(
        cur,
        "INSERT INTO project_dirty (project_id, version, release_id, date, publisher, owner, local_id) "
        "SELECT v.pid, (SELECT last_record FROM feed_counter WHERE id = 1), v.rid, v.date, v.publisher, v.owner, "
        "v.local_id FROM (VALUES %s) AS v(pid, rid, date, publisher, owner, local_id) "
        "ON CONFLICT (project_id) DO UPDATE SET version = EXCLUDED.version, "
        "owner = COALESCE(project_dirty.owner, EXCLUDED.owner), "
        "local_id = COALESCE(project_dirty.local_id, EXCLUDED.local_id), "
        "release_id = CASE WHEN newer THEN EXCLUDED.release_id ELSE project_dirty.release_id END, "
        "date = CASE WHEN newer THEN EXCLUDED.date ELSE project_dirty.date END, "
        "publisher = CASE WHEN newer THEN EXCLUDED.publisher ELSE project_dirty.publisher END".replace(
            "newer", "(EXCLUDED.date, EXCLUDED.release_id) > (project_dirty.date, project_dirty.release_id)"),
        rows, page_size=len(rows), template="(%s, %s, %s, %s, %s, %s)")


def _save_members(cur: Cursor, members: Mapping[str, tuple[str, str]]) -> None:
    """Upsert the membership rows of ``members`` (ocid -> project id, publisher) whose project or publisher
    changed: a rebuild reads the members' compiled releases from their records."""
    if not members:
        return
    rows = sorted((ocid, pid, publisher) for ocid, (pid, publisher) in members.items())
    execute_values(cur, "INSERT INTO project_members (ocid, project_id, publisher) VALUES %s "
                   "ON CONFLICT (ocid) DO UPDATE SET project_id = EXCLUDED.project_id, publisher = EXCLUDED.publisher "
                   "WHERE (project_members.project_id, project_members.publisher) "
                   "IS DISTINCT FROM (EXCLUDED.project_id, EXCLUDED.publisher)", rows, page_size=len(rows))


def _members(cur: Cursor, pids: list[str], base_url: str, merger: CompilerSource) -> dict[str, list[Member]]:
    """Each project's members: their records' current compiled releases and their linked releases. Call it in
    one snapshot (the builder) or with the writers' lock held (a supply)."""
    cur.execute("SELECT m.project_id, r.ocid, r.compiled::text, r.tail_bytes, r.extensions FROM project_members m "
                "JOIN records r ON r.ocid = m.ocid WHERE m.project_id = ANY(%s) ORDER BY r.ocid", (pids,))
    rows = cur.fetchall()
    compiled = reader.up_to_date(cur, merger, [row[1:] for row in rows])
    linked: dict[str, list[tuple[str, str, list[str]]]] = defaultdict(list)
    cur.execute("SELECT ocid, release_id, date, tags FROM releases WHERE ocid = ANY(%s)", ([row[1] for row in rows],))
    for ocid, rid, date, tags in cur.fetchall():
        linked[ocid].append((rid, date, list(tags)))
    out: dict[str, list[Member]] = defaultdict(list)
    for pid, ocid, *_ in rows:
        out[pid].append(Member(ocid, compiled[ocid], linked_releases(base_url, ocid, linked[ocid]), owned=True))
    return out


def project_url(base_url: str, pid: str) -> str:
    return f"{base_url}/api/projects/{quote(pid, safe='')}"


@dataclass
class _Build:
    """A project built from one snapshot of its members, at ``version``, and what writing it needs."""

    pid: str
    project: dict[str, Any]
    digest: str
    fields: dict[str, Any]
    overview: dict[str, Any]
    members: int
    version: int
    cause: Cause
    owner: tuple[str, str] | None


def _oc4ids(settings: Settings) -> Oc4idsSchema:
    try:
        return cached_oc4ids_schema(settings.oc4ids_dir, settings.cache_dir)
    except SchemaUnavailableError as exc:  # the caller waits and retries, as when the store is down
        raise StoreUnavailableError(f"projects cannot be built without the OC4IDS schema: {exc}") from exc


def _build(pid: str, group: Sequence[Member], fields: dict[str, Any], oc4ids: Oc4idsSchema, version: int,
           cause: Cause, owner: tuple[str, str] | None) -> _Build:
    project, removed = conform(build(pid, group, fields), oc4ids)
    overview = {**figures(project, group), "removed": removed[:100]}
    return _Build(pid, project, digest(project), fields, overview, len(group), version, cause, owner)


def _commit(cur: Cursor, settings: Settings, builds: Sequence[_Build],
            supplied: Mapping[str, tuple[dict[str, Any], str]] | None = None) -> int:
    """Write the ``builds`` that are newer than what is stored (``built_version``) and differ from it, with one
    ``project.updated`` event each; the caller holds feed_counter's lock. Returns the events appended."""
    supplied = supplied or {}
    cur.execute("SELECT id, data, digest, built_version FROM projects WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                ([b.pid for b in builds],))
    stored = {pid: (data, dig, int(version)) for pid, data, dig, version in cur.fetchall()}
    writes, events, touched = [], [], []
    for b in builds:
        old_data, old_digest, built = stored.get(b.pid, (None, None, -1))
        if b.version < built or (b.version == built and b.pid not in supplied):
            continue  # a build from a newer (or the same) snapshot is stored
        if old_data is None and not b.members and not b.fields:
            continue  # a project nobody belongs to and nobody supplied fields for: no row to keep
        if b.digest == old_digest and b.pid not in supplied:
            touched.append((b.pid, b.version))
            continue
        writes.append(b)
        if b.digest != old_digest:
            old = orjson.loads(old_data) if old_data is not None else None
            events.append(_event(b.pid, old, b.project, old_digest, b.digest, b.cause, b.overview, settings.base_url))
    if touched:
        execute_values(cur, "UPDATE projects SET built_version = v.version FROM (VALUES %s) AS v(id, version) "
                       "WHERE projects.id = v.id", touched, page_size=len(touched))
    if not writes:
        return 0
    numbers = writer.allocate(cur, len(events), 0, len(writes))
    _save(cur, writes, numbers.record, supplied)
    _append(cur, events, numbers.change)
    return len(events)


def rebuild(cur: Cursor, settings: Settings, merger: CompilerSource, touched: Mapping[str, Cause],
            owners: Mapping[str, tuple[str, str]], supplied: Mapping[str, tuple[dict[str, Any], str]] | None = None
            ) -> int:
    """Rebuild the projects ``touched`` now, from their members as committed, and write those that changed, with
    their events. The caller holds feed_counter's lock (taken first, in the writers' order), so the build is at
    the current version. ``supplied``: new supplied fields and who supplied them. Returns the events appended."""
    pids = sorted(touched)
    if not pids:
        return 0
    oc4ids = _oc4ids(settings)
    cur.execute("SELECT last_record FROM feed_counter WHERE id = 1")
    version = int(cur.fetchone()[0])
    fields = _fields(cur, pids)
    members = _members(cur, pids, settings.base_url, merger)
    builds = [_build(pid, members.get(pid, []), fields.get(pid, {}), oc4ids, version, touched[pid], owners.get(pid))
              for pid in pids]
    return _commit(cur, settings, builds, supplied)


def _fields(cur: Cursor, pids: list[str]) -> dict[str, dict[str, Any]]:
    cur.execute("SELECT id, fields::text FROM project_fields WHERE id = ANY(%s)", (pids,))
    return {pid: orjson.loads(text) for pid, text in cur.fetchall()}


def build_pending(conn: Any, settings: Settings, merger: CompilerSource, limit: int = 32) -> tuple[int, int]:
    """One round of the project builder: rebuild up to ``limit`` marked projects (oldest marks first), each once.

    Reads the marks, the members and the supplied fields in one snapshot (REPEATABLE READ), builds outside any
    lock, then writes in a short transaction that takes feed_counter's lock first (the writers' order) and
    clears each mark its build covers; a project marked again meanwhile stays marked for the next round.
    Returns (projects built, events appended).
    """
    oc4ids = _oc4ids(settings)
    with conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("SELECT project_id, version, release_id, date, publisher, owner, local_id FROM project_dirty "
                    "ORDER BY version, project_id LIMIT %s", (limit,))
        marks = {pid: (int(version), Cause(rid, date, publisher), (owner, local) if owner and local else None)
                 for pid, version, rid, date, publisher, owner, local in cur.fetchall()}
        if not marks:
            conn.commit()
            return 0, 0
        pids = sorted(marks)
        fields = _fields(cur, pids)
        members = _members(cur, pids, settings.base_url, merger)
    conn.commit()
    builds = [_build(pid, members.get(pid, []), fields.get(pid, {}), oc4ids, *marks[pid]) for pid in pids]
    with conn.cursor() as cur:
        cur.execute("SELECT last FROM feed_counter WHERE id = 1 FOR UPDATE")
        events = _commit(cur, settings, builds)
        execute_values(cur, "DELETE FROM project_dirty d USING (VALUES %s) AS v(id, version) "
                       "WHERE d.project_id = v.id AND d.version <= v.version",
                       [(b.pid, b.version) for b in builds], page_size=len(builds))
    conn.commit()
    return len(builds), events


def newest_mark(conn: Any) -> int:
    """The version of the newest mark (0: none): it grows while the stream touches projects."""
    with conn.cursor() as cur:
        cur.execute("SELECT coalesce(max(version), 0) FROM project_dirty")
        newest = int(cur.fetchone()[0])
    conn.commit()
    return newest


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
            "authority", "status", "members", "search", "seq", "built_version")
_KEPT = {"publisher", "local_id", "id", "supplied_by"}
_UPSERT = (
    f"INSERT INTO projects ({', '.join(_COLUMNS)}) VALUES %s ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS if c not in _KEPT)
    + ", supplied_by = COALESCE(EXCLUDED.supplied_by, projects.supplied_by), updated_at = now()"
)


def _save(cur: Cursor, writes: Sequence[_Build], first_seq: int,
          supplied: Mapping[str, tuple[dict[str, Any], str]]) -> None:
    rows = []
    for seq, b in enumerate(writes, start=first_seq):
        publisher, local = b.owner or ("", b.pid)
        overview = b.overview
        title, authority = overview.get("title"), (overview.get("public_authority") or {}).get("name")
        words = (title, authority, b.pid, *overview.get("buyers", ()))
        search = writer.unaccent(" ".join(str(v) for v in words if v)).lower()
        rows.append((b.pid, publisher, local, writer.json_text(b.project), b.digest, writer.json_text(b.fields),
                     supplied[b.pid][1] if b.pid in supplied else None, writer.json_text(overview), title, authority,
                     overview.get("status"), b.members, search, seq, b.version))
    execute_values(cur, _UPSERT, rows, page_size=len(rows),
                   template="(%s, %s, %s, %s, %s, %s::jsonb, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s)")


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
           settings: Settings, merger: CompilerSource) -> bool:
    """Store supplied project-level fields for ``pid`` (replacing earlier ones) and rebuild it, in one
    transaction. Returns whether the project changed."""
    with conn.cursor() as cur:
        cur.execute("SELECT last FROM feed_counter WHERE id = 1 FOR UPDATE")  # the writers' lock order
        cur.execute("INSERT INTO project_fields (id, publisher, local_id, fields, supplied_by) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET fields = EXCLUDED.fields, "
                    "supplied_by = EXCLUDED.supplied_by, updated_at = now()",
                    (pid, publisher, local, writer.json_text(fields), supplied_by))
        changed = rebuild(cur, settings, merger, {pid: Cause(publisher=publisher)}, {pid: (publisher, local)},
                          {pid: (fields, supplied_by)})
    conn.commit()
    return changed > 0


def apply_file(conn: Any, settings: Settings, schema: Oc4idsSchema, merger: CompilerSource) -> list[tuple[str, str]]:
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
            cur.execute("SELECT fields::text FROM project_fields WHERE id = %s", (pid,))
            row = cur.fetchone()
        conn.commit()
        if row is not None and orjson.loads(row[0]) == entry.fields:
            out.append((pid, "unchanged"))
            continue
        changed = supply(conn, pid, entry.publisher, entry.local_id, entry.fields, "operator", settings, merger)
        out.append((pid, "changed" if changed else "stored"))
    return out
