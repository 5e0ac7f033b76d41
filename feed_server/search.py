"""``GET /api/search``: full-text search and filters over the records, with highlights and facets.

Every parameter arrives as a string and is checked here, so a bad value is a 400 that names the
parameter (never FastAPI's 422, never a 500). The cursor is opaque to clients: base64url of a small JSON
object holding the sort, the last row's key and ocid, and a fingerprint of the filters, so a cursor cannot
be replayed against another search.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import logging
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

import orjson
import psycopg2
from fastapi import APIRouter, Query, Request

from core.store import search as store
from feed_server.responses import JSON, problem

logger = logging.getLogger("ocds_live.feed")

router = APIRouter()

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
MAX_Q = 500
MAX_VALUE = 200
_AMOUNT = re.compile(r"-?\d{1,20}(\.\d{1,10})?")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_FILTERS = ("q", "buyer", "supplier", "method", "status", "from", "to", "min_amount", "max_amount")


class BadParameter(ValueError):
    """A query parameter that cannot be used; the message names it."""


def _text(params: Mapping[str, str], name: str, most: int = MAX_VALUE) -> str | None:
    value = params.get(name)
    if value is None or not value.strip():
        return None
    if len(value) > most:
        raise BadParameter(f"{name} is longer than {most} characters")
    if any(ord(c) < 32 and c not in "\t\n\r" for c in value):
        raise BadParameter(f"{name} contains control characters")
    return value.strip() if name == "q" else value


def _instant(params: Mapping[str, str], name: str, *, end_of_day: bool) -> datetime | None:
    value = _text(params, name)
    if value is None:
        return None
    try:
        if _DAY.fullmatch(value):
            return datetime.combine(date.fromisoformat(value), time.max if end_of_day else time.min, UTC)
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise BadParameter(f"{name} must be a date (2024-01-31) or an RFC 3339 date-time") from None
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def _amount(params: Mapping[str, str], name: str) -> Decimal | None:
    value = _text(params, name)
    if value is None:
        return None
    if not _AMOUNT.fullmatch(value.strip()):
        raise BadParameter(f"{name} must be a number such as 1000000 or 2500.50")
    return Decimal(value.strip())


def _limit(params: Mapping[str, str]) -> int:
    value = _text(params, "limit")
    if value is None:
        return DEFAULT_LIMIT
    if not value.isascii() or not value.isdigit() or not 1 <= int(value[:4]) <= MAX_LIMIT or len(value) > 4:
        raise BadParameter(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def fingerprint(params: Mapping[str, str]) -> str:
    """What a cursor must have been made for: the filters (not the sort, limit or cursor)."""
    canonical = orjson.dumps({name: params.get(name) for name in _FILTERS})
    return hashlib.sha256(canonical).hexdigest()[:16]


def encode_cursor(sort: str, seek: store.Seek, filters: str) -> str:
    key = seek.key
    value: Any = key.isoformat() if isinstance(key, datetime) else str(key) if isinstance(key, Decimal) else key
    raw = orjson.dumps({"s": sort, "k": value, "o": seek.ocid, "f": filters})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str, filters: str) -> store.Seek:
    """The seek position in ``cursor``; :class:`BadParameter` unless it was made for this sort and filters."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise BadParameter("cursor is not a cursor this server made") from None
    ocid = data.get("o") if isinstance(data, dict) else None
    if not isinstance(ocid, str) or "k" not in data or len(ocid) > 1000 or any(ord(c) < 32 for c in ocid):
        raise BadParameter("cursor is not a cursor this server made")
    if data.get("s") != sort or data.get("f") != filters:
        raise BadParameter("cursor belongs to another search: keep the same q, filters and sort when paging")
    value = data["k"]
    key: store.Key = None
    try:
        if value is None:
            key = None
        elif sort == "relevance" and isinstance(value, float | int) and not isinstance(value, bool):
            key = float(value)
            if not 0 <= key <= 1e30:  # ranks are small and never negative; this keeps ::real from overflowing
                raise ValueError
        elif sort.endswith("date") and isinstance(value, str):
            instant = datetime.fromisoformat(value)
            if instant.tzinfo is None:
                raise ValueError
            key = instant
        elif sort.endswith("amount") and isinstance(value, str) and _AMOUNT.fullmatch(value):
            key = Decimal(value)
        else:
            raise ValueError
    except ValueError:
        raise BadParameter("cursor is not a cursor this server made") from None
    if sort == "relevance" and key is None:
        raise BadParameter("cursor is not a cursor this server made")
    return store.Seek(key, ocid)


def parse_query(params: Mapping[str, str]) -> store.SearchQuery:
    """The search that ``params`` ask for; :class:`BadParameter` names the first bad one."""
    q = _text(params, "q", MAX_Q)
    sort = _text(params, "sort") or ("relevance" if q is not None else "-date")
    if sort not in store.SORTS:
        raise BadParameter(f"sort must be one of {', '.join(store.SORTS)}")
    if sort == "relevance" and q is None:
        raise BadParameter("sort=relevance needs q")
    date_from = _instant(params, "from", end_of_day=False)
    date_to = _instant(params, "to", end_of_day=True)
    if date_from is not None and date_to is not None and date_from > date_to:
        raise BadParameter("from is after to")
    min_amount, max_amount = _amount(params, "min_amount"), _amount(params, "max_amount")
    if min_amount is not None and max_amount is not None and min_amount > max_amount:
        raise BadParameter("min_amount is more than max_amount")
    cursor = _text(params, "cursor", 1000)
    after = None if cursor is None else decode_cursor(cursor, sort, fingerprint(params))
    return store.SearchQuery(
        q=q, buyer=_text(params, "buyer"), supplier=_text(params, "supplier"), method=_text(params, "method"),
        status=_text(params, "status"), date_from=date_from, date_to=date_to, min_amount=min_amount,
        max_amount=max_amount, sort=sort, after=after, limit=_limit(params),
    )


def render(
    result: store.SearchResult, query: store.SearchQuery, params: Mapping[str, str], base: str
) -> dict[str, Any]:
    """The response body: results, facets, the next page's link, the total."""
    results = [
        {
            "ocid": hit.ocid,
            "title": hit.title,
            "buyer": hit.buyer,
            "suppliers": hit.suppliers,
            "method": hit.method,
            "status": hit.status,
            "amount": None if hit.amount is None else float(hit.amount),
            "currency": hit.currency,
            "date": hit.date,
            "highlight": hit.highlight,
            "record_url": f"{base}/api/records/{quote(hit.ocid, safe='')}",
        }
        for hit in result.hits
    ]
    following = None
    if result.next is not None:
        kept = [(k, v) for k, v in params.items() if k != "cursor"]
        cursor = encode_cursor(query.sort, result.next, fingerprint(params))
        following = f"{base}/api/search?{urlencode([*kept, ('cursor', cursor)])}"
    return {"results": results, "facets": result.facets, "links": {"next": following}, "total": result.total,
            "total_relation": result.relation}


_DOC = {
    "q": "words to find (Spanish, accents optional): \"quoted phrase\", or, -excluded",
    "buyer": "buyer organization id", "supplier": "supplier organization id",
    "method": "procurement method (open, selective, limited, direct)",
    "status": "process status, <stage>.<code> such as contract.active",
    "from": "records dated on or after this date or RFC 3339 date-time (dates are UTC days)",
    "to": "records dated on or before this date or date-time (a date includes its whole UTC day)",
    "min_amount": "largest of tender, award and contract amounts at least this",
    "max_amount": "largest of tender, award and contract amounts at most this",
    "sort": "relevance (default with q), -date (default without), date, amount, -amount",
    "cursor": "from links.next", "limit": f"results per page, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})",
}


@router.get("/api/search", response_class=JSON)
async def search(
    request: Request,
    q: str | None = Query(None, description=_DOC["q"]),
    buyer: str | None = Query(None, description=_DOC["buyer"]),
    supplier: str | None = Query(None, description=_DOC["supplier"]),
    method: str | None = Query(None, description=_DOC["method"]),
    status: str | None = Query(None, description=_DOC["status"]),
    date_from: str | None = Query(None, alias="from", description=_DOC["from"]),
    date_to: str | None = Query(None, alias="to", description=_DOC["to"]),
    min_amount: str | None = Query(None, description=_DOC["min_amount"]),
    max_amount: str | None = Query(None, description=_DOC["max_amount"]),
    sort: str | None = Query(None, description=_DOC["sort"]),
    cursor: str | None = Query(None, description=_DOC["cursor"]),
    limit: str | None = Query(None, description=_DOC["limit"]),
) -> JSON:
    """Search the records: Spanish full text, filters, seek pages, highlights and facets."""
    params = dict(request.query_params)  # the last value of a repeated parameter wins
    try:
        query = parse_query(params)
    except BadParameter as exc:
        return problem(400, str(exc))
    try:
        run = functools.partial(store.search, window=request.app.state.settings.search_window)
        result = await request.app.state.db.run(run, query, request.app.state.compiler)
    except psycopg2.OperationalError as exc:  # includes a statement timeout
        logger.warning("search failed: %s", str(exc).strip())
        return problem(503, "search is unavailable or took too long; try again or narrow it", **{"Retry-After": "5"})
    return JSON(render(result, query, params, request.app.state.settings.base_url))
