"""``WS /ws/changes``: filtered, resumable change push. The protocol is in docs/websocket.md.

Each connection reads the shared change log from its own position: the backfill comes from the
store, recent changes from the hub's memory, and the switch to live is seamless because both are the
same gapless sequence. A subscriber whose send stays blocked (it does not read) is closed with its
cursor; it holds no buffer of its own, so it delays nobody else.

A subscriber that asks for ``batch`` gets the changes ready at each step as ``changes`` messages of at
most that many changes, encoded once for every subscriber with the same filter and detail at the same
position. ``detail=brief`` sends the same changes without the old and new values of their fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from core.filters import ChangeFilter, FilterError
from core.store import reader
from feed_server.hub import ChangeHub
from feed_server.metrics import METRICS

router = APIRouter()
logger = logging.getLogger("ocds_live.feed")

PAGE = 500
MAX_BATCH = PAGE
CLOSE_BAD_CURSOR = 4004
CLOSE_TOO_SLOW = 4008
CLOSE_BAD_MESSAGE = 4400
CLOSE_TOO_MANY = 4429
DETAILS = ("summary", "brief", "full")  # brief: each changed field's path and op, without its values


class ProtocolError(ValueError):
    """A client message or parameter that the protocol does not allow."""


@dataclass
class Subscription:
    position: int
    filter: ChangeFilter = field(default_factory=ChangeFilter)
    detail: str = "summary"
    batch: int = 0  # at most this many changes per ``changes`` message; 0: one ``change`` message each


def _parse_after(raw: Any, head: int) -> int:
    if raw is None or raw == "now":
        return head
    if raw == "start":
        return 0
    if isinstance(raw, bool):
        raise ProtocolError(f"after must be a cursor, 'start' or 'now', not {raw!r}")
    try:
        return int(raw)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"after must be a cursor, 'start' or 'now', not {raw!r}") from exc


def _parse_batch(raw: Any) -> int:
    problem = f"batch must be an integer from 1 to {MAX_BATCH} (0 or none: one message per change), not {raw!r}"
    if raw is None or raw == "":
        return 0
    if isinstance(raw, bool) or isinstance(raw, float) and not raw.is_integer():
        raise ProtocolError(problem)
    try:
        batch = int(raw)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(problem) from exc
    if not 0 <= batch <= MAX_BATCH:
        raise ProtocolError(problem)
    return batch


def subscription_from(params: dict[str, Any], head: int) -> Subscription:
    """A subscription from query parameters or a ``subscribe`` message (raises ProtocolError)."""
    detail = params.get("detail") or "summary"
    if detail not in DETAILS:
        raise ProtocolError(f"detail must be one of {', '.join(DETAILS)}, not {detail!r}")
    filters = params.get("filters", params)
    if not isinstance(filters, dict):
        raise ProtocolError("filters must be a JSON object")
    try:
        change_filter = ChangeFilter.from_mapping(filters)
    except FilterError as exc:
        raise ProtocolError(str(exc)) from exc
    return Subscription(_parse_after(params.get("after"), head), change_filter, detail,
                        _parse_batch(params.get("batch")))


class Connection:
    def __init__(self, ws: WebSocket, hub: ChangeHub, send_timeout: float) -> None:
        self.ws = ws
        self.hub = hub
        self.send_timeout = send_timeout
        self.sub = Subscription(hub.head)
        self.sender: asyncio.Future[None] | None = None
        self.sending_since: float | None = None  # watched by the server's watchdog, not a timer per send
        self.too_slow = False

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_text(orjson.dumps(message).decode())

    async def send_text(self, text: str) -> None:
        self.sending_since = asyncio.get_running_loop().time()
        try:
            await self.ws.send_text(text)
        finally:
            self.sending_since = None
        METRICS.ws_messages.inc()

    def stuck(self, now: float) -> bool:
        """Whether a send has been blocked longer than the send timeout: then stop the sender."""
        if self.sending_since is not None and now - self.sending_since > self.send_timeout:
            self.too_slow = True
            if self.sender is not None:
                self.sender.cancel()
            return True
        return False

    async def check_cursor(self, position: int) -> bool:
        first = await self.ws.app.state.db.run(reader.first_cursor)
        low = (first or 1) - 1
        if low <= position <= self.hub.head:
            return True
        await self.send({"type": "error", "code": "unknown-cursor", "cursor": position,
                         "message": f"cursor {position} is not in the change log ({low}..{self.hub.head}); "
                                    f"resume from {low} for everything the log still holds"})
        await self.ws.close(CLOSE_BAD_CURSOR, reason=f"unknown cursor {position}")
        return False

    def start(self) -> None:
        """(Re)start streaming the current subscription."""
        if self.sender is not None:
            self.sender.cancel()
        self.sender = asyncio.ensure_future(self.stream(self.sub))

    async def receive(self) -> None:
        """Client messages: ``subscribe`` replaces the subscription; anything else is an error."""
        while True:
            text = await self.ws.receive_text()
            try:
                message = orjson.loads(text)
                if not isinstance(message, dict) or message.get("type") != "subscribe":
                    raise ProtocolError("the only client message is {\"type\": \"subscribe\", ...}")
                sub = subscription_from(message, self.hub.head)
            except (orjson.JSONDecodeError, ProtocolError) as exc:
                await self.send({"type": "error", "code": "bad-message", "message": str(exc)})
                continue
            if await self.check_cursor(sub.position):
                self.sub = sub
                self.start()

    async def full(self, event: dict[str, Any]) -> dict[str, Any]:
        state = self.ws.app.state
        record = await state.db.run(reader.compiled, event["ocid"], state.compiler)
        return {**event, "compiledRelease": record}

    async def stream(self, sub: Subscription) -> None:
        """Send the subscription's changes forever: backfill, ``caught_up``, then live."""
        subscribed = {"type": "subscribed", "cursor": sub.position, "detail": sub.detail,
                      "filters": sub.filter.as_dict()}
        await self.send({**subscribed, "batch": sub.batch} if sub.batch else subscribed)
        caught_up = False
        limit = self.ws.app.state.settings.ws_queue_size
        while True:
            events = await self.hub.read(sub.position, PAGE)
            if not events:
                if not caught_up:
                    await self.send({"type": "caught_up", "cursor": sub.position})
                    caught_up = True
                head = self.hub.head
                await self.hub.wait()  # the next step of the log, or the hub's heartbeat tick
                if self.hub.head == head:
                    await self.send({"type": "heartbeat", "cursor": sub.position})
                continue
            if caught_up and self.hub.head - sub.position > limit:
                await self.send({"type": "error", "code": "too-slow", "cursor": sub.position,
                                 "message": f"you fell more than {limit} changes behind; reconnect with "
                                            f"after={sub.position}"})
                await self.ws.close(CLOSE_TOO_SLOW, reason=str(sub.position))
                return
            if sub.batch:
                frames = (await self.hub.full_frames(sub.filter, events, sub.batch) if sub.detail == "full"
                          else self.hub.frames(sub.filter, events, sub.batch, sub.detail))
                for text, last in frames:
                    await self.send_text(text)
                    sub.position = last
            else:
                for event in self.hub.selection(sub.filter, events).events:
                    if sub.detail == "full":
                        payload = await self.full(event)
                        await self.send({"type": "change", "cursor": event["cursor"], "change": payload})
                    else:
                        await self.send_text(self.hub.encoded(event, sub.detail))
                    sub.position = event["cursor"]
            sub.position = events[-1]["cursor"]


@router.websocket("/ws/changes")
async def changes(ws: WebSocket) -> None:
    """Filtered change push; see docs/websocket.md for the protocol."""
    state = ws.app.state
    client = ws.client.host if ws.client else "?"
    counts: dict[str, int] = state.ws_clients
    await ws.accept()
    if counts.get(client, 0) >= state.settings.ws_max_per_client:
        await ws.send_text(orjson.dumps({"type": "error", "code": "too-many-connections",
                                         "message": f"at most {state.settings.ws_max_per_client} "
                                                    "connections per client address"}).decode())
        await ws.close(CLOSE_TOO_MANY)
        return
    counts[client] = counts.get(client, 0) + 1
    METRICS.ws_connections.inc()
    conn = Connection(ws, state.hub, state.settings.ws_send_timeout)
    state.connections.add(conn)
    try:
        try:
            conn.sub = subscription_from(dict(ws.query_params), state.hub.head)
        except ProtocolError as exc:
            await conn.send({"type": "error", "code": "bad-request", "message": str(exc)})
            await ws.close(CLOSE_BAD_MESSAGE)
            return
        if not await conn.check_cursor(conn.sub.position):
            return
        receiver = asyncio.ensure_future(conn.receive())
        conn.start()
        try:
            while conn.sender is not None:
                sender = conn.sender
                done, _ = await asyncio.wait([receiver, sender], return_when=asyncio.FIRST_COMPLETED)
                if receiver in done:
                    break  # the client went away
                if sender.cancelled() and not conn.too_slow:
                    continue  # replaced by a new subscription
                if conn.too_slow:
                    METRICS.ws_slow_closed.inc()
                    with contextlib.suppress(Exception):
                        await ws.close(CLOSE_TOO_SLOW, reason=str(conn.sub.position))
                break
        finally:
            receiver.cancel()
            if conn.sender is not None:
                conn.sender.cancel()
            await asyncio.gather(receiver, *([conn.sender] if conn.sender else []), return_exceptions=True)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        counts[client] -= 1
        state.connections.discard(conn)
        METRICS.ws_connections.dec()
