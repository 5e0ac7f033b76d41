"""The OCDS API, per OCDS publication guidance: packages, seek paging with ``links.next``, bulk files.

Every list is paged by a number taken in commit order (see ``core.store.writer.allocate``), so a
client following ``links.next`` while the store is written to sees every item once, in order.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from core.filters import ChangeFilter, FilterError
from core.store import reader
from feed_server.responses import JSON, problem

router = APIRouter()

OCDS_VERSION = "1.1"
Limit = Annotated[int, Query(ge=1, le=1000, description="items per page")]
After = Annotated[int, Query(ge=0, description="the cursor of the last item you have (0: from the start)")]


def _publisher(request: Request) -> dict[str, str]:
    return {"name": "ocds-live", "uri": request.app.state.settings.base_url}


def _stamp(when: datetime | None = None) -> str:
    return (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _next(request: Request, **params: Any) -> str:
    query = {k: v for k, v in request.query_params.items() if k not in params}
    query.update({k: str(v) for k, v in params.items()})
    return f"{request.app.state.settings.base_url}{request.url.path}?{urlencode(query)}"


def _linked(base: str, ocid: str, releases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"url": f"{base}/api/releases/{ocid}/{r['id']}", "date": r["date"], "tag": r["tag"]} for r in releases]


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, Any]:
    """Liveness: the server answers and sees the change log."""
    return {"status": "ok", "head": request.app.state.hub.head}


@router.get("/api/records/{ocid}", response_class=JSON)
async def get_record(ocid: str, request: Request) -> JSON:
    """One contracting process as an OCDS record package (compiled and versioned release)."""
    row = await request.app.state.db.run(reader.record, ocid)
    if row is None:
        raise HTTPException(404, f"no record for ocid {ocid!r}")
    base = request.app.state.settings.base_url
    record = {
        "ocid": ocid,
        "releases": _linked(base, ocid, row["releases"]),
        "compiledRelease": row["compiled"],
        "versionedRelease": row["versioned"],
    }
    return JSON({
        "uri": f"{base}/api/records/{ocid}",
        "version": OCDS_VERSION,
        "publishedDate": _stamp(row["updated_at"]),
        "publisher": _publisher(request),
        "records": [record],
    })


@router.get("/api/releases/{ocid}/{release_id}", response_class=JSON)
async def get_release(ocid: str, release_id: str, request: Request) -> JSON:
    """One release, in a release package."""
    data = await request.app.state.db.run(reader.release, ocid, release_id)
    if data is None:
        raise HTTPException(404, f"no release {release_id!r} for ocid {ocid!r}")
    base = request.app.state.settings.base_url
    return JSON({
        "uri": f"{base}/api/releases/{ocid}/{release_id}",
        "version": OCDS_VERSION,
        "publishedDate": _stamp(),
        "publisher": _publisher(request),
        "releases": [data],
    })


@router.get("/api/releases", response_class=JSON)
async def list_releases(request: Request, cursor: After = 0, limit: Limit = 100,
                        since: Annotated[str | None, Query(description="only releases dated at or after")] = None,
                        ) -> JSON:
    """Every release in the order it was stored, as a release package with ``links.next``."""
    rows = await request.app.state.db.run(reader.releases_page, cursor, limit, since)
    package: dict[str, Any] = {
        "uri": str(request.url), "version": OCDS_VERSION, "publishedDate": _stamp(),
        "publisher": _publisher(request), "releases": [data for _, data in rows], "links": {},
    }
    if rows:
        package["links"]["next"] = _next(request, cursor=rows[-1][0])
    return JSON(package)


@router.get("/api/records", response_class=JSON)
async def list_records(request: Request, cursor: After = 0, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> JSON:
    """Every record in the order of its last change (compiled release and linked releases), paged."""
    rows = await request.app.state.db.run(reader.records_page, cursor, limit)
    base = request.app.state.settings.base_url
    package: dict[str, Any] = {
        "uri": str(request.url), "version": OCDS_VERSION, "publishedDate": _stamp(),
        "publisher": _publisher(request),
        "records": [
            {"ocid": r["ocid"], "releases": _linked(base, r["ocid"], r["releases"]), "compiledRelease": r["compiled"]}
            for _, r in rows
        ],
        "links": {},
    }
    if rows:
        package["links"]["next"] = _next(request, cursor=rows[-1][0])
    return JSON(package)


@router.get("/api/changes", response_class=JSON)
async def list_changes(
    request: Request, after: After = 0, limit: Limit = 100,
    ocid: str | None = None, ocid_prefix: str | None = None, buyer: str | None = None,
    supplier: str | None = None, method: str | None = None, category: str | None = None,
    kind: str | None = None, min_amount: float | None = None, max_amount: float | None = None,
    currency: str | None = None, q: str | None = None,
) -> JSON:
    """The pull form of the change feed: changes after a cursor, filtered like the websocket.

    ``next_cursor`` is the last cursor examined (matching or not): pass it as ``after`` next time.
    """
    try:
        change_filter = ChangeFilter.from_mapping(dict(request.query_params))
    except FilterError as exc:
        return problem(400, str(exc))
    head = request.app.state.hub.head
    first = await request.app.state.db.run(reader.first_cursor)
    if after > head or (first is not None and after < first - 1):
        return problem(410 if after < head else 404,
                       f"cursor {after} is not in the change log ({(first or 1) - 1}..{head})")
    found: list[dict[str, Any]] = []
    position, scanned = after, 0
    while len(found) < limit and scanned < 20 * limit and position < head:
        events = await request.app.state.hub.read(position, 500)
        if not events:
            break
        for event in events:
            position = event["cursor"]
            scanned += 1
            if change_filter.matches(event):
                found.append(event)
                if len(found) >= limit:
                    break
    body: dict[str, Any] = {"changes": found, "next_cursor": position, "head": head, "links": {}}
    body["links"]["next"] = _next(request, after=position)
    return JSON(body)


@router.get("/api/rejected", response_class=JSON)
async def list_rejected(request: Request, after: After = 0, limit: Limit = 100,
                        publisher: str | None = None) -> JSON:
    """Rejected releases with their findings and where they were read (source topic/partition/offset)."""
    rows = await request.app.state.db.run(reader.rejected_page, after, limit, publisher)
    body: dict[str, Any] = {"rejected": rows, "links": {}}
    if rows:
        body["links"]["next"] = _next(request, after=rows[-1]["id"])
    return JSON(body)


@router.get("/api/bulk/{kind}.jsonl.gz", response_class=StreamingResponse)
async def bulk(kind: str, request: Request) -> StreamingResponse:
    """Every release or every compiled release, streamed as gzipped JSON Lines (``releases`` or ``records``)."""
    if kind not in ("releases", "records"):
        raise HTTPException(404, "bulk files are releases.jsonl.gz and records.jsonl.gz")
    db = request.app.state.db

    async def chunks() -> AsyncIterator[bytes]:
        gzip = zlib.compressobj(6, zlib.DEFLATED, 31)
        position = 0
        while True:
            if kind == "releases":
                rows = await db.run(reader.releases_page, position, 1000, None)
                lines = [orjson.dumps(data) for _, data in rows]
            else:
                rows = await db.run(reader.records_page, position, 500)
                lines = [orjson.dumps(r["compiled"]) for _, r in rows]
            if not rows:
                break
            position = rows[-1][0]
            yield gzip.compress(b"\n".join(lines) + b"\n")
        yield gzip.flush()

    return StreamingResponse(chunks(), media_type="application/gzip",
                             headers={"Content-Disposition": f'attachment; filename="{kind}.jsonl.gz"'})
