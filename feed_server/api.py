"""The OCDS API, per OCDS publication guidance: packages, seek paging with ``links.next``, bulk files.

Every list is paged by a number taken in commit order (see ``core.store.writer.allocate``): a
transaction that took lower numbers always commits before one that took higher ones, so the rows a
reader can see are always a prefix of the numbering. A client following ``links.next`` while the store
is written to therefore sees:

- ``/api/releases``: every release once, in the order it was stored (releases never change);
- ``/api/changes``: every change once, in cursor order;
- ``/api/records``: every record at least once. A record takes a new number each time it is written, so
  one updated while you page moves behind your position and appears again later with its new version
  (never skipped; keep the last one you see per ocid).

``links.next`` is given when more items are stored after the page (the server reads one more than
``limit`` to know), so following it from the start visits only non-empty pages, each a package that
validates against the OCDS 1.1.5 package schemas, and ends. ``links.resume`` is given when you have
caught up: the same position, to poll later for what is stored after it (an empty answer there has an
empty ``releases``/``records`` array, the one package that cannot meet the schema's ``minItems``).
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from core.exceptions import MergeConflictError
from core.filters import ChangeFilter, FilterError
from core.merge import RecordMerger
from core.profiles import Profiles
from core.store import reader, writer
from feed_server.hub import LogReplaced, replaced_error
from feed_server.responses import JSON, problem

_ERROR = {"description": "an error: `{\"error\": message, \"status\": code}`"}
router = APIRouter(responses={
    400: _ERROR,
    429: {**_ERROR, "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}},
})

OCDS_VERSION = "1.1"
MAX_CURSOR = 2**63 - 1  # numbers are PostgreSQL bigints
Limit = Annotated[int, Query(ge=1, le=1000, description="items per page")]
After = Annotated[int, Query(ge=0, le=MAX_CURSOR,
                             description="the cursor of the last item you have (0: from the start)")]
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _publisher(request: Request) -> dict[str, str]:
    return {"name": "ocds-live", "uri": request.app.state.settings.base_url}


def _base(request: Request) -> str:
    base: str = request.app.state.settings.base_url
    return base


def _stamp(when: datetime | None = None) -> str:
    return (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _self(request: Request) -> str:
    """This request's URL on the public base URL (what the package's ``uri`` names)."""
    query = urlencode(list(request.query_params.multi_items()))
    return f"{_base(request)}{request.url.path}" + (f"?{query}" if query else "")


def _next(request: Request, **params: Any) -> str:
    query = {k: v for k, v in request.query_params.items() if k not in params}
    query.update({k: str(v) for k, v in params.items()})
    return f"{_base(request)}{request.url.path}?{urlencode(query)}"


def _links(request: Request, rows: list[tuple[int, Any]], limit: int, position: int) -> dict[str, str]:
    """``next`` when more than ``limit`` rows came back (the extra one is dropped), else ``resume``."""
    if len(rows) > limit:
        return {"next": _next(request, cursor=rows[limit - 1][0])}
    return {"resume": _next(request, cursor=rows[-1][0] if rows else position)}


def _release_url(base: str, ocid: str, release_id: str) -> str:
    return f"{base}/api/releases/{quote(ocid, safe='')}/{quote(release_id, safe='')}"


def _linked(base: str, ocid: str, releases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Linked releases (url, date, tag), in date order as the record package schema asks."""
    return [{"url": _release_url(base, ocid, r["id"]), "date": r["date"], "tag": r["tag"]} for r in releases]


def _storable(*values: str | None) -> bool:
    """Whether PostgreSQL text can hold these values (it cannot hold NUL, so no row has one)."""
    return not any(v is not None and "\x00" in v for v in values)


def _package(request: Request, published: str, extensions: Iterable[str] = (), **content: Any) -> dict[str, Any]:
    """A release or record package; ``extensions`` are those of the releases it holds (their union)."""
    package: dict[str, Any] = {"uri": _self(request), "version": OCDS_VERSION, "publishedDate": published,
                               "publisher": _publisher(request)}
    declared = sorted(set(extensions))
    if declared:
        package["extensions"] = declared
    return {**package, **content}


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, Any]:
    """Liveness: the server answers and sees the change log."""
    return {"status": "ok", "head": request.app.state.hub.head}


def _derive_versioned(conn: Any, ocid: str, merger: RecordMerger) -> dict[str, Any] | None:
    """The record merged from its stored releases (linked releases, compiled and versioned release); the
    versioned release is kept unless the record changed meanwhile. None when the record is gone.

    The stream processor does not write versioned releases (they cost 4x the compiled release); the
    first request for one derives it here. Releases and the record's seq are read in one statement (one
    snapshot), and ``writer.store_versioned`` keeps the result only while the record still has that seq.
    """
    with conn.cursor() as cur:
        cur.execute("SELECT r.seq, s.data::text FROM records r JOIN releases s ON s.ocid = r.ocid WHERE r.ocid = %s",
                    (ocid,))
        rows = cur.fetchall()
        if not rows:
            conn.commit()
            return None
        releases = [orjson.loads(data) for _, data in rows]
        try:
            merged = merger.merge(releases)
        except MergeConflictError:  # the processor stores only releases that merge; never fail a read on it
            conn.commit()
            return None
        if merged.versioned is not None:
            writer.store_versioned(cur, ocid, merged.versioned, rows[0][0])
    conn.commit()
    linked = sorted(({"id": r["id"], "date": r["date"], "tag": list(r.get("tag") or [])} for r in releases),
                    key=lambda r: (r["date"], r["id"]))
    return {"releases": linked, "compiled": merged.compiled, "versioned": merged.versioned}


@router.get("/api/records/{ocid}", response_class=JSON, responses={404: _ERROR})
async def get_record(ocid: str, request: Request) -> JSON:
    """One contracting process as an OCDS record package: linked releases, compiled and versioned release.

    A versioned release not stored yet is derived from the stored releases on this request, and kept.
    """
    db = request.app.state.db
    row = await db.run(reader.record, ocid, request.app.state.compiler) if _storable(ocid) else None
    if row is None:
        return problem(404, f"no record for ocid {ocid!r}")
    if row["versioned"] is None:  # derived from one snapshot of the releases, so all parts agree
        profiles: Profiles = request.app.state.profiles
        merger = profiles.versioned(row["extensions"])
        row = {**row, **(await db.run(_derive_versioned, ocid, merger) or {})}
    record = {
        "ocid": ocid,
        "releases": _linked(_base(request), ocid, row["releases"]),
        "compiledRelease": row["compiled"],
    }
    if row["versioned"] is not None:
        record["versionedRelease"] = row["versioned"]
    return JSON(_package(request, _stamp(row["updated_at"]), row["extensions"], records=[record]))


@router.get("/api/releases/{ocid}/{release_id}", response_class=JSON, responses={404: _ERROR})
async def get_release(ocid: str, release_id: str, request: Request) -> JSON:
    """One release, in a release package."""
    found = _storable(ocid, release_id)
    data, extensions = (await request.app.state.db.run(reader.release_with_extensions, ocid, release_id)
                        if found else (None, []))
    if data is None:
        return problem(404, f"no release {release_id!r} for ocid {ocid!r}")
    return JSON(_package(request, _stamp(), extensions, releases=[data]))


@router.get("/api/releases", response_class=JSON)
async def list_releases(
    request: Request, cursor: After = 0, limit: Limit = 100,
    since: Annotated[str | None, Query(description=(
        "only releases dated at or after this date (2024-01-31) or RFC 3339 date-time, compared with each "
        "release's date as published"))] = None,
) -> JSON:
    """Every release in the order it was stored, as a release package with ``links.next`` (seek paging).

    Following ``links.next`` (then ``links.resume``) while releases are stored returns each release
    exactly once.
    """
    if since is not None:
        try:
            if not _DAY.fullmatch(since):
                datetime.fromisoformat(since)
        except ValueError:
            return problem(400, "since must be a date (2024-01-31) or an RFC 3339 date-time")
    declared: list[list[str]] = []
    rows = await request.app.state.db.run(reader.releases_page, cursor, limit + 1, since, declared)
    links = _links(request, rows, limit, cursor)
    extensions = {url for urls in declared[:limit] for url in urls}
    return JSON(_package(request, _stamp(), extensions, releases=[data for _, data in rows[:limit]], links=links))


@router.get("/api/records", response_class=JSON)
async def list_records(request: Request, cursor: After = 0,
                       limit: Annotated[int, Query(ge=1, le=200, description="records per page")] = 50) -> JSON:
    """Every record in the order of its last write (linked releases and compiled release), with ``links.next``.

    A record written again while you page moves behind your position: it appears again later with its
    new version, and is never skipped.
    """
    rows = await request.app.state.db.run(reader.records_page, cursor, limit + 1, request.app.state.compiler)
    base = _base(request)
    records = [
        {"ocid": r["ocid"], "releases": _linked(base, r["ocid"], r["releases"]), "compiledRelease": r["compiled"]}
        for _, r in rows[:limit]
    ]
    extensions = {url for _, r in rows[:limit] for url in r["extensions"]}
    return JSON(_package(request, _stamp(), extensions, records=records, links=_links(request, rows, limit, cursor)))


@router.get("/api/changes", response_class=JSON, responses={404: _ERROR, 410: _ERROR, 503: _ERROR})
async def list_changes(
    request: Request, after: After = 0, limit: Limit = 100,
    ocid: str | None = None, ocid_prefix: str | None = None, buyer: str | None = None,
    supplier: str | None = None, method: str | None = None, category: str | None = None,
    kind: str | None = None, min_amount: float | None = None, max_amount: float | None = None,
    currency: str | None = None, q: str | None = None,
) -> JSON:
    """The pull form of the change feed: changes after a cursor, filtered like the websocket.

    ``next_cursor`` is the last cursor examined (matching or not): pass it as ``after`` next time (or
    follow ``links.next``). One request examines at most ``20 * limit`` changes, so a page of a rare
    filter may be empty before the head: keep following until ``next_cursor`` equals ``head``. A cursor
    past the head is 404; one before the oldest change kept is 410. After the store was rebuilt and switched
    over (``ocds-live replay --switch``), a cursor of the replaced log is 410 with ``code`` ``store-rebuilt`` and
    ``resume_after``, the cursor of the rebuilt log where the replaced one ended; during the switch, 503.
    """
    try:
        change_filter = ChangeFilter.from_mapping(dict(request.query_params))
    except FilterError as exc:
        return problem(400, str(exc))
    hub = request.app.state.hub
    generation, first = await request.app.state.db.run(reader.log_bounds)
    if generation.generation != hub.generation.generation or after and after < generation.base:
        return _replaced(after, generation if generation.generation == hub.generation.generation else None)
    after = after or generation.base  # 0: from the start of this log
    head = await hub.reach(after)  # a cursor another feed server sent first is waited for (feed_server.hub)
    if after > head:
        return problem(404, f"cursor {after} is not in the change log: the newest change is {head}")
    if first is not None and after < first - 1:
        return problem(410, f"cursor {after} is no longer in the change log: the oldest change kept is {first}; "
                            "start again from a record or from after=" + str(first - 1))
    found: list[dict[str, Any]] = []
    position, scanned = after, 0
    while len(found) < limit and scanned < 20 * limit and position < head:
        try:
            events = await hub.read(position, 500)
        except LogReplaced as exc:
            return _replaced(after, exc.generation)
        if not events:
            break
        for event in events:
            position = event["cursor"]
            scanned += 1
            if change_filter.matches(event):
                found.append(event)
                if len(found) >= limit:
                    break
    return JSON({"changes": found, "next_cursor": position, "head": head,
                 "links": {"next": _next(request, after=position)}})


def _replaced(after: int, generation: reader.Generation | None) -> JSON:
    """410 for a cursor of a replaced change log (with where to resume); 503 while the switch is under way."""
    error = replaced_error(after, generation)
    status = 410 if error["code"] == "store-rebuilt" else 503
    return JSON({"error": error["message"], "status": status, **error}, status_code=status,
                headers={"Retry-After": "2"} if status == 503 else None)


@router.get("/api/rejected", response_class=JSON)
async def list_rejected(request: Request, after: After = 0, limit: Limit = 100,
                        publisher: str | None = None) -> JSON:
    """Rejected releases with their findings and where they were read (source topic/partition/offset)."""
    if not _storable(publisher):
        return problem(400, "publisher contains a NUL character")
    rows = await request.app.state.db.run(reader.rejected_page, after, limit, publisher)
    body: dict[str, Any] = {"rejected": rows, "links": {}}
    if rows:
        body["links"]["next"] = _next(request, after=rows[-1]["id"])
    return JSON(body)


class _Gzip:
    """Gzip members of JSON Lines, compressed in a worker thread so the event loop keeps serving."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(6, zlib.DEFLATED, 31)

    def _lines(self, items: list[Any]) -> bytes:
        return self._z.compress(b"".join(orjson.dumps(item) + b"\n" for item in items))

    async def lines(self, items: list[Any]) -> bytes:
        return await asyncio.to_thread(self._lines, items)

    def end(self) -> bytes:
        return self._z.flush()


@router.get("/api/bulk/package.json", response_class=JSON)
async def bulk_package(request: Request) -> JSON:
    """The package metadata of the bulk files: publisher, version, and the extensions their releases declare
    (JSON Lines cannot carry them), with links to the files."""
    extensions = await request.app.state.db.run(reader.declared_extensions)
    base = _base(request)
    links = {"releases": f"{base}/api/bulk/releases.jsonl.gz", "records": f"{base}/api/bulk/records.jsonl.gz"}
    return JSON({**_package(request, _stamp(), extensions), "links": links})


@router.get("/api/bulk/{kind}.jsonl.gz", response_class=StreamingResponse, response_model=None, responses={
    200: {"content": {"application/gzip": {}}, "description": "gzipped JSON Lines"}, 404: _ERROR,
})
async def bulk(kind: str, request: Request) -> StreamingResponse | JSON:
    """Every release (``releases``) or every compiled release (``records``), streamed as gzipped JSON Lines.

    Read in the same order as the paged lists: releases stored while the file streams are included
    once; a record written again while the file streams appears again later in it with its new
    version (keep the last line per ocid).
    """
    if kind not in ("releases", "records"):
        return problem(404, "bulk files are releases.jsonl.gz and records.jsonl.gz")
    db = request.app.state.db

    async def chunks() -> AsyncIterator[bytes]:
        gzip = _Gzip()
        position = 0
        while True:
            if kind == "releases":
                rows = await db.run(reader.releases_page, position, 1000, None)
                items = [data for _, data in rows]
            else:
                rows = await db.run(reader.records_page, position, 500, request.app.state.compiler)
                items = [r["compiled"] for _, r in rows]
            if not rows:
                break
            position = rows[-1][0]
            yield await gzip.lines(items)
        yield gzip.end()

    return StreamingResponse(chunks(), media_type="application/gzip", headers={
        "Content-Disposition": f'attachment; filename="{kind}.jsonl.gz"',
        "Link": f'<{_base(request)}/api/bulk/package.json>; rel="describedby"',
    })
