"""Alerts: the watchdog's feed (``GET /api/alerts``, Atom), each process's flags, counts, and webhooks.

- ``GET /api/alerts?rule=&buyer=&supplier=&ocid=&project=&after=&limit=``: alert events (``alert.raised`` and
  ``alert.withdrawn``) with cursor > ``after``, oldest first. Cursors are gapless and committed in order, so
  following ``links.next`` returns every matching event once, in order, also while alerts are written.
- ``GET /feeds/alerts.atom?rule=&buyer=``, ``/feeds/alerts/buyer/{id}.atom``, ``/feeds/alerts/rule/{code}.atom``:
  the newest events as Atom (no archives: the JSON feed is the complete, resumable one).
- ``GET /api/flags``: active alerts counted by rule, buyer and month (the page ``/flags`` shows them);
  ``GET /api/flags/{ocid}``: a process's active flags with their evidence (the process page shows them).
- ``POST /api/webhooks`` (operator token): register ``{"url", "rules"?, "buyer"?, "after"?}``; the answer holds
  the signing secret, shown once. ``GET /api/webhooks/{id}/deliveries`` (operator token): the delivery log.

The same events pushed over the websocket: ``WS /ws/alerts`` (feed_server.ws_alerts).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from feedgen.feed import FeedGenerator
from pydantic import BaseModel, Field
from starlette.responses import FileResponse, Response

from core.redflags.rules import RULES, title
from core.store import alerts, webhooks
from feed_server.atom_render import clean
from feed_server.pages import SECURITY_HEADERS, STATIC
from feed_server.responses import JSON, problem

router = APIRouter()
MAX_CURSOR = 2**63 - 1
ATOM_ENTRIES = 100
ATOM_TYPE = "application/atom+xml; charset=utf-8"
KIND_TITLES = {"alert.raised": "Alerta / Alert", "alert.withdrawn": "Alerta retirada / Alert withdrawn"}


class WebhookIn(BaseModel):
    url: str = Field(pattern=r"^https?://", max_length=2000, description="where alerts are POSTed")
    rules: list[str] | None = Field(default=None, description="only these rule codes (default: every rule)")
    buyer: str | None = Field(default=None, max_length=200, description="only alerts naming this buyer id")
    after: int | None = Field(default=None, ge=0, description="deliver events after this cursor (default: from now)")


def filters_of(rule: str | None, buyer: str | None, supplier: str | None, ocid: str | None,
               project: str | None = None) -> dict[str, str]:
    values = {"rule": rule, "buyer": buyer, "supplier": supplier, "ocid": ocid, "project": project}
    return {k: v for k, v in values.items() if v}


def bad_filter(filters: dict[str, str]) -> str | None:
    for name, value in filters.items():
        if "\x00" in value or len(value) > 200:
            return f"{name} must be at most 200 characters, without NUL"
    if "rule" in filters and filters["rule"] not in RULES:
        return f"unknown rule {filters['rule']!r}; rules: {', '.join(RULES)}"
    return None


@router.get("/api/alerts", response_class=JSON)
async def list_alerts(
    request: Request, rule: str | None = None, buyer: str | None = None, supplier: str | None = None,
    ocid: str | None = None,
    project: Annotated[str | None, Query(description="an OC4IDS project id: its alerts and its processes'")] = None,
    after: Annotated[int, Query(ge=0, le=MAX_CURSOR, description="the last cursor you have (0: from the start)")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSON:
    """Alert events (raised and withdrawn) after ``after``, oldest first, with ``links.next`` to resume."""
    filters = filters_of(rule, buyer, supplier, ocid, project)
    if (error := bad_filter(filters)) is not None:
        return problem(400, error)
    db = request.app.state.db
    head = await db.run(alerts.head)
    rows = await db.run(alerts.events_page, after, limit, filters, False, head)
    position = rows[-1][0] if len(rows) == limit else max(after, head)
    query = urlencode({**filters, "after": position, "limit": limit})
    base = request.app.state.settings.base_url
    return JSON({"alerts": [event for _, _, event in rows], "next_cursor": position, "head": head,
                 "links": {"next": f"{base}/api/alerts?{query}"}})


@router.get("/flags", include_in_schema=False)
async def flags_page() -> FileResponse:
    """The flags page: active alerts counted by rule, buyer and month."""
    return FileResponse(STATIC / "flags.html", media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


@router.get("/api/flags", response_class=JSON)
async def flag_counts(request: Request) -> JSON:
    """Active alerts counted by rule, by buyer (the 50 most flagged) and by month raised."""
    return JSON(await request.app.state.db.run(alerts.counts))


@router.get("/api/flags/{ocid:path}", response_class=JSON)
async def process_flags(ocid: str, request: Request) -> JSON:
    """The active flags of one contracting process, with their evidence."""
    if "\x00" in ocid:
        return problem(400, "ocid contains a NUL character")
    return JSON({"ocid": ocid, "flags": await request.app.state.db.run(alerts.active_for, ocid)})


def _atom(request: Request, path: str, feed_title: str, rows: list[Any]) -> Response:
    base = request.app.state.settings.base_url
    fg = FeedGenerator()
    fg.id(f"{base}{path}")
    fg.title(clean(feed_title))
    fg.author({"name": "ocds-live", "uri": base})
    fg.generator("ocds-live", uri=base)
    fg.link(href=f"{base}{path}", rel="self", type="application/atom+xml")
    newest = rows[0][1] if rows else datetime(1970, 1, 1, tzinfo=UTC)
    fg.updated(newest if newest.tzinfo else newest.replace(tzinfo=UTC))
    for cursor, created, event in rows:
        entry = fg.add_entry(order="append")
        entry.id(f"urn:ocds-live:alert-event:{cursor}")
        subject = event.get("ocid") or event.get("key")
        entry.title(clean(f"{KIND_TITLES.get(event.get('kind'), 'Alerta')}: {title(event.get('rule'))}: {subject}"))
        entry.updated(created if created.tzinfo else created.replace(tzinfo=UTC))
        if event.get("record_url"):
            entry.link(href=clean(event["record_url"]), rel="alternate")
        lines = [f"{e.get('ocid') + ' ' if e.get('ocid') else ''}{e.get('pointer')}: {e.get('value')}"
                 for e in event.get("evidence") or []]
        lines += [f"{k}: {v}" for k, v in (event.get("detail") or {}).items()]
        entry.summary(clean("\n".join(lines) or str(event.get("key"))))
        entry.category(term=clean(str(event.get("rule"))), label=clean(title(event.get("rule"))))
    body: bytes = fg.atom_str(pretty=True)
    return Response(body, media_type=ATOM_TYPE, headers={"Cache-Control": "no-cache"})


async def _feed(request: Request, path: str, filters: dict[str, str]) -> Response:
    if (error := bad_filter(filters)) is not None:
        return problem(400, error)
    rows = await request.app.state.db.run(alerts.events_page, 0, ATOM_ENTRIES, filters, True, None)
    described = ", ".join(f"{k}={v}" for k, v in filters.items())
    return _atom(request, path, "ocds-live: alertas / alerts" + (f" ({described})" if described else ""), rows)


@router.get("/feeds/alerts.atom", response_class=Response)
async def alerts_feed(request: Request, rule: str | None = None, buyer: str | None = None) -> Response:
    """The newest alert events as Atom, optionally of one rule or one buyer."""
    query = urlencode(filters_of(rule, buyer, None, None))
    return await _feed(request, "/feeds/alerts.atom" + (f"?{query}" if query else ""),
                       filters_of(rule, buyer, None, None))


@router.get("/feeds/alerts/buyer/{buyer_id:path}.atom", response_class=Response)
async def buyer_alerts_feed(buyer_id: str, request: Request) -> Response:
    """The newest alert events naming one buyer, as Atom."""
    return await _feed(request, f"/feeds/alerts/buyer/{quote(buyer_id, safe='')}.atom", {"buyer": buyer_id})


@router.get("/feeds/alerts/rule/{rule}.atom", response_class=Response)
async def rule_alerts_feed(rule: str, request: Request) -> Response:
    """The newest alert events of one rule, as Atom."""
    return await _feed(request, f"/feeds/alerts/rule/{quote(rule, safe='')}.atom", {"rule": rule})


def _operator(request: Request) -> JSON | None:
    """None when the request carries the operator token; else the error answer."""
    token = request.app.state.settings.operator_token
    if token is None:
        return problem(403, "operator actions are disabled: set OCDS_LIVE_OPERATOR_TOKEN on the feed server")
    given = request.headers.get("authorization", "")
    if not secrets.compare_digest(given.encode(), f"Bearer {token.get_secret_value()}".encode()):
        return problem(401, "this needs the operator token: Authorization: Bearer <OCDS_LIVE_OPERATOR_TOKEN>",
                       **{"WWW-Authenticate": "Bearer"})
    return None


@router.post("/api/webhooks", response_class=JSON, status_code=201)
async def register_webhook(body: WebhookIn, request: Request) -> JSON:
    """Register a webhook (operator token). The answer holds its signing secret, shown only here."""
    if (refused := _operator(request)) is not None:
        return refused
    unknown = [r for r in body.rules or [] if r not in RULES]
    if unknown:
        return problem(400, f"unknown rules {unknown}; rules: {', '.join(RULES)}")
    created = await request.app.state.db.run(webhooks.register, body.url, body.rules, body.buyer, body.after)
    return JSON(created, status_code=201)


@router.get("/api/webhooks/{webhook_id}/deliveries", response_class=JSON)
async def webhook_deliveries(webhook_id: int, request: Request,
                             after: Annotated[int, Query(ge=0, le=MAX_CURSOR)] = 0,
                             limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> JSON:
    """The delivery log of one webhook (operator token): every attempt with its outcome."""
    if (refused := _operator(request)) is not None:
        return refused
    db = request.app.state.db
    if not await db.run(webhooks.exists, webhook_id):
        return problem(404, f"no webhook {webhook_id}")
    return JSON({"deliveries": await db.run(webhooks.deliveries, webhook_id, after, limit)})
