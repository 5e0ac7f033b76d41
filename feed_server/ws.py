"""``WS /ws/changes``: filtered, resumable change push. The protocol is in docs/websocket.md.

This module is the protocol, whatever carries it: parsing subscriptions, the checks, the errors and close
codes, and a subscriber streaming from its own position (:class:`Subscriber`). The backfill comes from the
store, recent changes from the hub's memory, and the switch to live is seamless because both are the
same gapless sequence. A subscriber whose send stays blocked (it does not read) is closed with its
cursor; it holds no buffer of its own, so it delays nobody else.

Two transports: ``ocds-live serve`` hands the socket to the ``websockets`` library, and a caught-up
subscriber to the fan-out, which frames each message once for all (feed_server.wsserver,
feed_server.fanout); the ASGI route below (``serve --websocket asgi``, or any ASGI server) sends each
subscriber's messages itself. A subscriber that asks for ``batch`` gets the changes ready at each step
as ``changes`` messages of at most that many changes, encoded once for every subscriber with the same
filter and detail at the same position. ``detail=brief`` sends the same changes without the old and
new values of their fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from core.exceptions import StoreUnavailableError
from core.filters import ChangeFilter, FilterError
from core.store import reader
from feed_server.hub import ChangeHub, LogReplaced, replaced_error
from feed_server.metrics import METRICS

router = APIRouter()
logger = logging.getLogger("ocds_live.feed")

PAGE = 500
MAX_BATCH = PAGE
CLOSE_BAD_CURSOR = 4004
CLOSE_TOO_SLOW = 4008
CLOSE_BAD_MESSAGE = 4400
CLOSE_TOO_MANY = 4429
CLOSE_STORE_REBUILT = 4410  # a cursor of a replaced change log (ocds-live replay --switch); docs/websocket.md
CLOSE_TRY_AGAIN = 1013  # the store is being switched over, or unreachable: reconnect in a few seconds
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


class Gone(Exception):
    """The client went away: its transport's own error, translated at the transport's boundary."""


class Subscriber:
    """One subscriber's side of the protocol, whatever carries its messages.

    Subclasses give the transport: :class:`AsgiSubscriber` (any ASGI server, one send per subscriber) and
    ``feed_server.wsserver.WebsocketSubscriber`` (the ``websockets`` server of ``ocds-live serve``, which hands
    caught-up subscriptions to the fan-out). A subscriber streams from its own position in a task of its
    own (the backfill, ``detail=full``, or when it fell behind), so its sends block nobody else.
    """

    def __init__(self, state: Any, client: str) -> None:
        self.state = state
        self.hub: ChangeHub = state.hub
        self.client = client
        self.send_timeout: float = state.settings.ws_send_timeout
        self.sub = Subscription(self.hub.head)
        self.sender: asyncio.Future[None] | None = None
        self.sending_since: float | None = None  # watched by the server's watchdog, not a timer per send
        self.closed = asyncio.get_running_loop().create_future()  # done once the server closed the connection

    # --- the transport -----------------------------------------------------------------------------

    async def write(self, text: str) -> None:
        """Send one text message; raise :class:`Gone` when the client is gone."""
        raise NotImplementedError

    async def read(self) -> str:
        """The next client message; raise :class:`Gone` when the client is gone."""
        raise NotImplementedError

    async def _close(self, code: int, reason: str) -> None:
        raise NotImplementedError

    def go_live(self, sub: Subscription) -> bool:
        """Hand a caught-up subscription (at the hub's head) over to a fan-out; False: keep streaming it here."""
        return False

    def leave(self) -> None:
        """Take the subscription back from the fan-out, if it has it."""

    @property
    def position(self) -> int:
        """The cursor of the last change examined for this subscriber."""
        return self.sub.position

    # --- the protocol ------------------------------------------------------------------------------

    async def close(self, code: int, reason: str = "") -> None:
        try:
            with contextlib.suppress(Exception):
                await self._close(code, reason)
        finally:
            if not self.closed.done():
                self.closed.set_result(None)

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_text(orjson.dumps(message).decode())

    async def send_text(self, text: str) -> None:
        self.sending_since = asyncio.get_running_loop().time()
        try:
            await self.write(text)
        finally:
            self.sending_since = None
        METRICS.ws_messages.inc()

    def stuck(self, now: float) -> bool:
        """Whether a send has been blocked longer than the send timeout: then stop the sender and close (4008)."""
        if self.sending_since is not None and now - self.sending_since > self.send_timeout:
            self.sending_since = None
            if self.sender is not None:
                self.sender.cancel()
            METRICS.ws_slow_closed.inc()
            asyncio.ensure_future(self.close(CLOSE_TOO_SLOW, str(self.sub.position)))
            return True
        return False

    async def check_cursor(self, position: int) -> bool:
        generation, first = await self.state.db.run(reader.log_bounds)
        seen = generation.generation == self.hub.generation.generation  # else: switching over right now
        if not seen or position and position < generation.base:
            await self.replaced(position, generation if seen else None)
            return False
        low = max((first or 1) - 1, generation.base)
        # a cursor another feed server sent before this one read it is waited for (feed_server.hub)
        if position == 0 or low <= position <= await self.hub.reach(position):
            return True
        await self.send({"type": "error", "code": "unknown-cursor", "cursor": position,
                         "message": f"cursor {position} is not in the change log ({low}..{self.hub.head}); "
                                    f"resume from {low} for everything the log still holds"})
        await self.close(CLOSE_BAD_CURSOR, f"unknown cursor {position}")
        return False

    async def replaced(self, position: int, generation: Any) -> None:
        """Tell the subscriber its cursor belongs to a replaced change log, and close (4410; 1013: retry)."""
        error = replaced_error(position, generation)
        await self.send({"type": "error", **error})
        await self.close(CLOSE_STORE_REBUILT if error["code"] == "store-rebuilt" else CLOSE_TRY_AGAIN, error["code"])

    async def unavailable(self, position: int) -> None:
        """The store cannot be read now (PostgreSQL is away): say so and close (1013), so the client reconnects."""
        logger.warning("websocket subscriber %s at cursor %s closed with 1013: the store is unreachable",
                       self.client, position)
        await self.send({"type": "error", "code": "store-unavailable", "cursor": position,
                         "message": f"the store is unreachable right now; reconnect in a few seconds with "
                                    f"after={position}"})
        await self.close(CLOSE_TRY_AGAIN, "store-unavailable")

    def start(self, sub: Subscription | None = None, *, caught_up: bool = False, announce: bool = True) -> None:
        """(Re)start streaming a new subscription, or the current one from its position."""
        self.leave()
        if self.sender is not None:
            self.sender.cancel()
        if sub is not None:
            self.sub = sub
            sub.position = sub.position or self.hub.generation.base  # after=start: this log's first change
        self.sender = asyncio.ensure_future(self._stream(self.sub, caught_up, announce))

    async def run(self, query: dict[str, Any]) -> None:
        """The life of an accepted connection: limits, the subscription in ``query``, then streaming and
        client messages until either side closes."""
        counts: dict[str, int] = self.state.ws_clients
        limit = self.state.settings.ws_max_per_client
        if counts.get(self.client, 0) >= limit:
            await self.send({"type": "error", "code": "too-many-connections",
                             "message": f"at most {limit} connections per client address"})
            await self.close(CLOSE_TOO_MANY)
            return
        counts[self.client] = counts.get(self.client, 0) + 1
        METRICS.ws_connections.inc()
        self.state.connections.add(self)
        receiver: asyncio.Future[None] | None = None
        try:
            try:
                self.sub = subscription_from(query, self.hub.head)
            except ProtocolError as exc:
                await self.send({"type": "error", "code": "bad-request", "message": str(exc)})
                await self.close(CLOSE_BAD_MESSAGE)
                return
            if not await self.check_cursor(self.sub.position):
                return
            receiver = asyncio.ensure_future(self._receive())
            self.start()
            await asyncio.wait([receiver, self.closed], return_when=asyncio.FIRST_COMPLETED)
        except Gone:
            pass
        except StoreUnavailableError:
            with contextlib.suppress(Gone):
                await self.unavailable(self.sub.position)
        finally:
            self.leave()
            tasks = [t for t in (receiver, self.sender) if t is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            counts[self.client] -= 1
            self.state.connections.discard(self)
            METRICS.ws_connections.dec()

    async def _receive(self) -> None:
        """Client messages: ``subscribe`` replaces the subscription; anything else is an error."""
        with contextlib.suppress(Gone):
            while True:
                text = await self.read()
                try:
                    message = orjson.loads(text)
                    if not isinstance(message, dict) or message.get("type") != "subscribe":
                        raise ProtocolError("the only client message is {\"type\": \"subscribe\", ...}")
                    sub = subscription_from(message, self.hub.head)
                except (orjson.JSONDecodeError, ProtocolError) as exc:
                    await self.send({"type": "error", "code": "bad-message", "message": str(exc)})
                    continue
                try:
                    checked = await self.check_cursor(sub.position)
                except StoreUnavailableError:
                    await self.unavailable(self.sub.position)
                    return
                if checked:
                    self.start(sub)

    async def full(self, event: dict[str, Any]) -> dict[str, Any]:
        record = await self.state.db.run(reader.compiled, event["ocid"], self.state.compiler)
        return {**event, "compiledRelease": record}

    async def _stream(self, sub: Subscription, caught_up: bool, announce: bool) -> None:
        with contextlib.suppress(Gone):
            try:
                await self.stream(sub, caught_up, announce)
            except LogReplaced as exc:
                await self.replaced(exc.cursor, exc.generation)
            except StoreUnavailableError:  # a backfill page or a full record read from the store
                await self.unavailable(self.sub.position)

    async def stream(self, sub: Subscription, caught_up: bool = False, announce: bool = True) -> None:
        """Send the subscription's changes: backfill, ``caught_up``, then live (here, or from the fan-out)."""
        if announce:
            subscribed = {"type": "subscribed", "cursor": sub.position, "detail": sub.detail,
                          "filters": sub.filter.as_dict()}
            await self.send({**subscribed, "batch": sub.batch} if sub.batch else subscribed)
        limit = self.state.settings.ws_queue_size
        while True:
            events = await self.hub.read(sub.position, PAGE)
            if not events:
                if not caught_up:
                    await self.send({"type": "caught_up", "cursor": sub.position})
                    caught_up = True
                if self.go_live(sub):
                    return
                head = self.hub.head
                await self.hub.wait()  # the next step of the log, or the hub's heartbeat tick
                if self.hub.head == head:
                    await self.send({"type": "heartbeat", "cursor": sub.position})
                continue
            if caught_up and self.hub.head - sub.position > limit:
                await self.send({"type": "error", "code": "too-slow", "cursor": sub.position,
                                 "message": f"you fell more than {limit} changes behind; reconnect with "
                                            f"after={sub.position}"})
                await self.close(CLOSE_TOO_SLOW, str(sub.position))
                return
            if sub.detail == "full":
                if sub.batch:
                    for text, last in await self.hub.full_frames(sub.filter, events, sub.batch):
                        await self.send_text(text)
                        sub.position = last
                else:
                    for event in self.hub.selection(sub.filter, events).events:
                        await self.send({"type": "change", "cursor": event["cursor"], "change": await self.full(event)})
                        sub.position = event["cursor"]
            else:
                for text, last in self.hub.messages(sub.filter, events, sub.batch, sub.detail):
                    await self.send_text(text)
                    sub.position = last
            sub.position = events[-1]["cursor"]


class AsgiSubscriber(Subscriber):
    """A subscriber over an ASGI websocket (Starlette's): one encoded send per subscriber and message."""

    def __init__(self, ws: WebSocket) -> None:
        super().__init__(ws.app.state, ws.client.host if ws.client else "?")
        self.ws = ws

    async def write(self, text: str) -> None:
        try:
            await self.ws.send_text(text)
        except (WebSocketDisconnect, RuntimeError) as exc:
            raise Gone from exc

    async def read(self) -> str:
        try:
            return await self.ws.receive_text()
        except (WebSocketDisconnect, RuntimeError, KeyError) as exc:
            raise Gone from exc

    async def _close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason=reason)


@router.websocket("/ws/changes")
async def changes(ws: WebSocket) -> None:
    """Filtered change push over the ASGI app (``ocds-live serve --websocket asgi``, or any ASGI server); see
    docs/websocket.md for the protocol."""
    await ws.accept()
    await AsgiSubscriber(ws).run(dict(ws.query_params))


def store_switched(state: Any, generation: Any) -> None:
    """The hub's switch listener: every subscriber still in the replaced log gets the store-rebuilt error."""
    for subscriber in list(state.connections):
        if subscriber.position < generation.base:
            subscriber.leave()
            if subscriber.sender is not None:
                subscriber.sender.cancel()
            asyncio.ensure_future(subscriber.replaced(subscriber.position, generation))
