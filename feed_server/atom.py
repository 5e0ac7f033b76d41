"""Atom feeds of the change log (RFC 4287), archived per RFC 5005, with conditional GET.

Routes (every one takes the filters of :class:`core.filters.ChangeFilter` as query parameters):

- ``GET /feeds/changes.atom`` — all changes, or those matching the filters;
- ``GET /feeds/ocid/{ocid}.atom``, ``/feeds/buyer/{buyer_id}.atom``, ``/feeds/supplier/{supplier_id}.atom``;
- the same with ``?after=<cursor>``: an archive document (see below).

**Archives.** A feed pages through a *stream* (:class:`core.store.feeds.Stream`): the changes of its
ocid, buyer or supplier when it has one (on ``/feeds/changes.atom``: the ``ocid``, else ``supplier``,
else ``buyer`` parameter), else the whole log. The stream is cut, from its start, into blocks of
:data:`PAGE_SIZE` changes; the block after cursor ``a`` is the archive ``?after=a``. The other filters
are applied in Python to each block, so an archive holds at most :data:`PAGE_SIZE` entries (maybe none).
The subscription document (no ``after``) holds the stream's changes after its newest complete block
(fewer than :data:`PAGE_SIZE`) and links ``prev-archive`` to that block; each archive carries
``<fh:archive/>`` and links ``prev-archive`` (none for the first), ``next-archive`` (the block after
its last change) and ``current``. Walking ``prev-archive`` from the subscription document visits every
change of the feed once. An archive is complete when its block is, and never changes afterwards
(cursors are committed in order; the rendering reads no clock); a block not complete yet answers
``307`` to the subscription document. On the whole log ``after`` must be a multiple of the page size
(else 404); on a keyed stream any ``after`` names a stable block, but only the linked ones form the chain.

**Cost.** An archive is one range scan of at most ``PAGE_SIZE`` index entries plus one to find the block
before; a subscription document adds an index-only count of the stream's changes (zero for the whole
log, O(changes of that buyer or supplier) otherwise). Filters other than ocid, buyer and supplier cost
nothing in SQL but can leave archives sparse: a subscriber after a rare ``q=`` walks ``head / PAGE_SIZE``
mostly empty archives, so such filters are best combined with a buyer or supplier.

**Caching.** Subscription documents: ``ETag`` from the stream's newest change (one index probe answers
``If-None-Match`` with 304 before anything is read), ``Last-Modified`` = when that change was
committed, ``Cache-Control: no-cache``. Archives: ``ETag`` from the block's name alone (answered 304
without touching the database), ``Last-Modified`` = when its last change was committed,
``Cache-Control: public, max-age=31536000, immutable``. ``If-None-Match`` takes precedence over
``If-Modified-Since`` (RFC 9110 §13.2.2). :data:`RENDER_VERSION` is part of every ETag: bump it when the
rendering changes. The page size is fixed per deployment: changing it re-cuts every archive.

**WebSub.** With ``OCDS_LIVE_WEBSUB_HUB`` set, subscription documents link ``rel="hub"`` (in the feed and
in an HTTP ``Link`` header, with ``rel="self"``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from core.filters import FILTER_FIELDS, ChangeFilter, FilterError
from core.store import feeds
from core.store.feeds import Field, Stream
from feed_server.atom_render import EPOCH, Document, render
from feed_server.hub import replaced_error
from feed_server.responses import problem

router = APIRouter()

PAGE_SIZE = 100
"""Changes per archive block. Fixed per deployment: changing it re-cuts every archive."""
RENDER_VERSION = "1"
"""Part of every ETag; bump when the documents' bytes change for the same changes."""
MEDIA_TYPE = "application/atom+xml; charset=utf-8"
ARCHIVE_CACHE = "public, max-age=31536000, immutable"
LIVE_CACHE = "no-cache"
_KEYED: tuple[Field, ...] = ("ocid", "supplier", "buyer")  # the stream a /feeds/changes.atom filter picks


@dataclass(frozen=True)
class Feed:
    """One logical feed: where it lives, which stream it pages through and which changes it keeps."""

    path: str
    stream: Stream
    filter: ChangeFilter
    implied: str | None = None  # the filter field its path names

    def query(self, after: int | None = None) -> str:
        """The canonical query string (filters in a fixed order), with ``after`` for an archive."""
        values = self.filter.as_dict()
        pairs = [(name, _text(values[name])) for name in FILTER_FIELDS if name in values and name != self.implied]
        if after is not None:
            pairs.append(("after", str(after)))
        return urlencode(pairs)

    def url(self, base_url: str, after: int | None = None) -> str:
        query = self.query(after)
        return f"{base_url}{self.path}" + (f"?{query}" if query else "")

    def title(self) -> str:
        values = self.filter.as_dict()
        described = ", ".join(f"{name}={_text(values[name])}" for name in FILTER_FIELDS if name in values)
        return "ocds-live: cambios / changes" + (f" ({described})" if described else "")


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _etag(*parts: Any) -> str:
    digest = hashlib.sha256(repr((RENDER_VERSION, *parts)).encode()).hexdigest()[:32]
    return f'"{digest}"'


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _http_date(moment: datetime) -> str:
    return format_datetime(_aware(moment).astimezone(UTC), usegmt=True)


def not_modified(headers: Any, etag: str, last_modified: datetime | None) -> bool:
    """Whether a conditional GET's validators match (If-None-Match wins over If-Modified-Since)."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or etag in tags
    since = headers.get("if-modified-since")
    if since is None or last_modified is None:
        return False
    try:
        moment = parsedate_to_datetime(since)
    except (TypeError, ValueError, IndexError):
        return False
    return _aware(last_modified).replace(microsecond=0) <= _aware(moment)


def _headers(etag: str, last_modified: datetime | None, cache: str) -> dict[str, str]:
    headers = {"ETag": etag, "Cache-Control": cache}
    if last_modified is not None:
        headers["Last-Modified"] = _http_date(last_modified)
    return headers


def _feed(request: Request, path: str, field: Field | None = None, value: str | None = None) -> Feed:
    params: dict[str, Any] = dict(request.query_params)
    if field is not None:
        params[field] = value
    chosen = ChangeFilter.from_mapping(params)
    values = chosen.as_dict()
    if field is not None:
        return Feed(path, Stream(field, str(values[field])), chosen, implied=field)
    for key in _KEYED:
        if key in values:
            return Feed(path, Stream(key, str(values[key])), chosen)
    return Feed(path, Stream(), chosen)


async def _serve(request: Request, path: str, field: Field | None = None, value: str | None = None) -> Response:
    try:
        feed = _feed(request, path, field, value)
    except FilterError as exc:
        return problem(400, str(exc))
    raw_after = request.query_params.get("after")
    if raw_after is None:
        return await _subscription(request, feed)
    try:
        after = int(raw_after)
    except ValueError:
        return problem(400, f"after must be a cursor (an integer), not {raw_after!r}")
    if after < 0:
        return problem(400, "after must not be negative")
    if after < request.app.state.hub.generation.base:  # an archive of a replaced change log
        return problem(410, replaced_error(after, request.app.state.hub.generation)["message"])
    return await _archive(request, feed, after)


async def _subscription(request: Request, feed: Feed) -> Response:
    settings = request.app.state.settings
    base, hub = settings.base_url, getattr(settings, "websub_hub", None)
    tip = await request.app.state.db.run(feeds.tip, feed.stream)
    etag = _etag("current", base, hub, feed.path, feed.query(), PAGE_SIZE, tip.newest)
    headers = _headers(etag, tip.newest_at, LIVE_CACHE)
    self_url = feed.url(base)
    if hub:
        headers["Link"] = f'<{hub}>; rel="hub", <{self_url}>; rel="self"'
    if not_modified(request.headers, etag, tip.newest_at):
        return Response(status_code=304, headers=headers)
    page = await request.app.state.db.run(feeds.subscription, feed.stream, tip.head, PAGE_SIZE)
    links: list[tuple[str, str]] = [("hub", hub)] if hub else []
    if page.prev_after is not None:
        links.append(("prev-archive", feed.url(base, page.prev_after)))
    doc = Document(feed_id=self_url, title=feed.title(), self_url=self_url, base_url=base,
                   updated=tip.newest_at or EPOCH, links=links)
    body = render(doc, [row for row in page.rows if feed.filter.matches(row.event)])
    return Response(body, media_type=MEDIA_TYPE, headers=headers)


async def _archive(request: Request, feed: Feed, after: int) -> Response:
    base = request.app.state.settings.base_url
    if feed.stream.field == "all" and after % PAGE_SIZE:
        return problem(404, f"no archive starts after cursor {after}: archives of this feed start after "
                            f"multiples of {PAGE_SIZE}")
    etag = _etag("archive", base, feed.path, feed.query(after), PAGE_SIZE)
    if not_modified(request.headers, etag, None):  # an archive never changes: its name is its validator
        return Response(status_code=304, headers=_headers(etag, None, ARCHIVE_CACHE))
    page = await request.app.state.db.run(feeds.archive, feed.stream, after, PAGE_SIZE)
    current = feed.url(base)
    if page is None:
        return RedirectResponse(current, status_code=307, headers={"Cache-Control": "no-store"})
    last = page.rows[0]  # newest first
    headers = _headers(etag, last.created_at, ARCHIVE_CACHE)
    if not_modified(request.headers, etag, last.created_at):
        return Response(status_code=304, headers=headers)
    links = [("current", current), ("next-archive", feed.url(base, last.cursor))]
    if page.prev_after is not None:
        links.append(("prev-archive", feed.url(base, page.prev_after)))
    doc = Document(feed_id=current, title=feed.title(), self_url=feed.url(base, after), base_url=base,
                   updated=last.created_at, links=links, archive=True)
    body = render(doc, [row for row in page.rows if feed.filter.matches(row.event)])
    return Response(body, media_type=MEDIA_TYPE, headers=headers)


@router.get("/feeds/changes.atom", response_class=Response)
async def changes_feed(request: Request) -> Response:
    """Changes matching the query's filters, as Atom; ``after=<cursor>`` for an archive document."""
    return await _serve(request, "/feeds/changes.atom")


@router.get("/feeds/ocid/{ocid:path}.atom", response_class=Response)
async def ocid_feed(ocid: str, request: Request) -> Response:
    """The changes of one contracting process, as Atom."""
    return await _serve(request, f"/feeds/ocid/{quote(ocid, safe='')}.atom", "ocid", ocid)


@router.get("/feeds/buyer/{buyer_id:path}.atom", response_class=Response)
async def buyer_feed(buyer_id: str, request: Request) -> Response:
    """The changes of one buyer's processes, as Atom."""
    return await _serve(request, f"/feeds/buyer/{quote(buyer_id, safe='')}.atom", "buyer", buyer_id)


@router.get("/feeds/supplier/{supplier_id:path}.atom", response_class=Response)
async def supplier_feed(supplier_id: str, request: Request) -> Response:
    """The changes naming one supplier, as Atom."""
    return await _serve(request, f"/feeds/supplier/{quote(supplier_id, safe='')}.atom", "supplier", supplier_id)
