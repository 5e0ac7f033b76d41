"""``WS /ws/alerts``: the watchdog's alerts feed pushed, resumable by cursor. The protocol is in docs/websocket.md.

The alert events' cursors are gapless and committed in order (``core.store.alerts``: one counter row locked until
commit), so a subscriber reads the store from its own position up to the committed head, pages the backfill, says
``caught_up``, and then waits for the head to move: a backfill that becomes live without a gap or a repeat. One
:class:`AlertTail` per server process polls the head (alerts are rare: one cheap query each
``ALERT_POLL`` seconds while anyone listens) and wakes the subscribers; each reads its own page, so a subscriber
that does not read delays nobody, and one whose send stays blocked is closed (4008) with its cursor.

Transport-agnostic like ``feed_server.ws``: :class:`AlertSubscriber` takes ``send``, ``receive`` and ``close``
callables; the ASGI route below and ``feed_server.wsserver`` (``ocds-live serve``) each supply theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from core.store import alerts
from feed_server.alerts import bad_filter, filters_of

router = APIRouter()
logger = logging.getLogger("ocds_live.feed")

PATH = "/ws/alerts"
PAGE = 200  # alert events read per query in the backfill
ALERT_POLL = 0.25  # seconds between reads of the alerts' head while someone listens
HEARTBEAT = 15.0  # seconds without alerts before a heartbeat
CLOSE_BAD_CURSOR, CLOSE_TOO_SLOW, CLOSE_BAD_REQUEST, CLOSE_TOO_MANY = 4004, 4008, 4400, 4429


class Gone(Exception):
    """The client went away."""


class AlertTail:
    """The committed head of the alerts feed, polled while subscribers listen; they wait on it for new alerts."""

    def __init__(self, db: Any, interval: float = ALERT_POLL) -> None:
        self.db, self.interval = db, interval
        self.head = 0
        self.users = 0
        self._moved = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def join(self) -> None:
        self.users += 1
        if self._task is None:
            self.head = await self.db.run(alerts.head)
            self._task = asyncio.create_task(self._poll())

    def leave(self) -> None:
        self.users -= 1
        if self.users == 0 and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                head = await self.db.run(alerts.head)
            except Exception:  # noqa: BLE001 - the store is away: keep the subscribers, try again
                logger.exception("reading the alerts' head failed; retrying")
                continue
            if head != self.head:
                self.head = head
                async with self._moved:
                    self._moved.notify_all()

    async def wait_beyond(self, position: int, timeout: float) -> bool:
        """Whether the head passed ``position`` within ``timeout`` seconds."""
        if self.head > position:
            return True
        async with self._moved:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._moved.wait_for(lambda: self.head > position), timeout)
        return self.head > position


def tail_of(state: Any) -> AlertTail:
    """The server process's tail, made on first use."""
    tail: AlertTail | None = getattr(state, "alert_tail", None)
    if tail is None:
        tail = state.alert_tail = AlertTail(state.db)
    return tail


def _after(raw: str | None, head: int) -> int:
    if raw is None or raw == "now":
        return head
    if raw == "start":
        return 0
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"after must be a cursor, 'start' or 'now', not {raw!r}") from exc


class AlertSubscriber:
    """One connection's life: checks, the backfill from ``after``, ``caught_up``, then alerts as they commit."""

    def __init__(self, state: Any, client: str, send: Callable[[str], Awaitable[None]],
                 receive: Callable[[], Awaitable[str]], close: Callable[[int, str], Awaitable[None]]) -> None:
        self.state, self.client = state, client
        self._send, self._receive, self._close = send, receive, close
        self.position = 0

    async def send(self, message: dict[str, Any]) -> None:
        text = orjson.dumps(message).decode()
        try:
            await asyncio.wait_for(self._send(text), self.state.settings.ws_send_timeout)
        except TimeoutError:
            with contextlib.suppress(Exception):
                await self._close(CLOSE_TOO_SLOW, str(self.position))
            raise Gone from None
        except Exception as exc:  # noqa: BLE001 - whatever the transport raises for a closed connection
            raise Gone from exc

    async def refuse(self, code: str, close: int, message: str) -> None:
        with contextlib.suppress(Exception):
            await self.send({"type": "error", "code": code, "message": message})
            await self._close(close, message[:120])

    async def run(self, query: dict[str, str]) -> None:
        counts: dict[str, int] = getattr(self.state, "alert_clients", None) or {}
        self.state.alert_clients = counts
        limit = self.state.settings.ws_max_per_client
        if counts.get(self.client, 0) >= limit:
            await self.refuse("too-many-connections", CLOSE_TOO_MANY, f"at most {limit} connections per address")
            return
        counts[self.client] = counts.get(self.client, 0) + 1
        tail = tail_of(self.state)
        await tail.join()
        try:
            await self._run(query, tail)
        except Gone:
            pass
        finally:
            tail.leave()
            counts[self.client] -= 1
            if not counts[self.client]:
                del counts[self.client]

    async def _run(self, query: dict[str, str], tail: AlertTail) -> None:
        filters = filters_of(*(query.get(name) for name in alerts.FILTERS))
        unknown = sorted(set(query) - {*alerts.FILTERS, "after"})
        try:
            after = _after(query.get("after"), tail.head)
            error = bad_filter(filters) or (f"unknown parameters {unknown}; see docs/websocket.md" if unknown else None)
        except ValueError as exc:
            error = str(exc)
        if error is not None:
            await self.refuse("bad-request", CLOSE_BAD_REQUEST, error)
            return
        head = await self.state.db.run(alerts.head)
        if not 0 <= after <= head:
            await self.refuse("unknown-cursor", CLOSE_BAD_CURSOR, f"unknown cursor {after}: alerts go from 0 to {head}")
            return
        self.position = after
        await self.send({"type": "subscribed", "cursor": after, "filters": filters})
        stream = asyncio.create_task(self._stream(filters, tail))
        listen = asyncio.create_task(self._listen())
        try:
            done, _ = await asyncio.wait([stream, listen], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                failure = task.exception()
                if failure is not None and not isinstance(failure, Gone):
                    raise failure
        finally:
            for task in (stream, listen):
                task.cancel()
            await asyncio.gather(stream, listen, return_exceptions=True)

    async def _stream(self, filters: dict[str, str], tail: AlertTail) -> None:
        caught_up = False
        while True:
            upto = max(tail.head, self.position)
            rows = await self.state.db.run(alerts.events_page, self.position, PAGE, filters, False, upto)
            for cursor, _, event in rows:
                await self.send({"type": "alert", "cursor": cursor, "alert": event})
                self.position = cursor
            if len(rows) == PAGE:
                continue
            self.position = upto  # every event up to the head was examined
            if not caught_up:
                await self.send({"type": "caught_up", "cursor": self.position})
                caught_up = True
            if not await tail.wait_beyond(self.position, HEARTBEAT):
                await self.send({"type": "heartbeat", "cursor": self.position})

    async def _listen(self) -> None:
        """Client messages: none is part of this protocol (each gets a ``bad-message`` error); ends when it leaves."""
        while True:
            await self._receive()
            await self.send({"type": "error", "code": "bad-message",
                             "message": "/ws/alerts takes no messages: reconnect with other parameters"})


async def serve_connection(state: Any, conn: Any, query: dict[str, str]) -> None:
    """The alerts feed on a ``websockets`` server connection (``feed_server.wsserver``, ``ocds-live serve``)."""

    async def receive() -> str:
        try:
            message = await conn.recv()
        except Exception as exc:  # noqa: BLE001 - ConnectionClosed, or the connection torn down
            raise Gone from exc
        return message if isinstance(message, str) else message.decode(errors="replace")

    client = conn.remote_address[0] if conn.remote_address else "?"
    await AlertSubscriber(state, client, conn.send, receive, conn.close).run(query)


@router.websocket(PATH)
async def alerts_socket(ws: WebSocket) -> None:
    """The alerts feed over the ASGI websocket (``serve --websocket asgi``, or any ASGI server)."""
    await ws.accept()

    async def receive() -> str:
        try:
            return await ws.receive_text()
        except (WebSocketDisconnect, RuntimeError) as exc:
            raise Gone from exc

    async def close(code: int, reason: str) -> None:
        with contextlib.suppress(RuntimeError):
            await ws.close(code, reason=reason)

    client = ws.client.host if ws.client else "?"
    await AlertSubscriber(ws.app.state, client, ws.send_text, receive, close).run(dict(ws.query_params))
