"""A subscriber's client for ``WS /ws/changes``: every change once, in order, across reconnections.

    async with ChangeClient("ws://127.0.0.1:8000/ws/changes", filters={"buyer": "MX-UC-0001"}) as client:
        async for change in client:
            ...  # a change event (docs/websocket.md); client.cursor is its cursor

The client remembers the cursor of the last change it handed out and, whenever the connection ends
(the network, a restart of the server, or a close for being too slow: 4008), connects again with
``after=<that cursor>``: the server's log is gapless, so nothing is missed and nothing comes twice.
A cursor the server no longer holds (4004) or a subscription it refuses raises :class:`FeedError`;
that is never retried in silence. Batches (``batch``) are unpacked: the iterator yields changes.

When the server's store was rebuilt and switched over (``ocds-live replay --switch``), the client's cursor
belongs to a change log that is no longer served: the server says so (``store-rebuilt``, close 4410) with
``resume_after``, the cursor of the rebuilt log where the old one ended. What the client does is
``on_rebuild``: ``"resume"`` (the default) goes on from ``resume_after``: no gap and no repeat when the client
had every change of the old log (``StoreRebuilt.missed`` is 0, as for a subscriber that was connected at the
switch); otherwise it missed ``missed`` changes, and the application re-reads the records it follows.
``"restart"`` reads the rebuilt log from its start (everything again); ``"raise"`` raises
:class:`StoreRebuiltError`. Either way ``on_rebuilt(event)`` is called first, if given, and
``client.rebuilds`` keeps every :class:`StoreRebuilt` seen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from core.exceptions import OcdsLiveError

logger = logging.getLogger("ocds_live.client")

FATAL_ERRORS = ("unknown-cursor", "bad-request", "bad-message", "too-many-connections")


class FeedError(OcdsLiveError):
    """The feed refused the subscription (its ``code`` says why); reconnecting would not help."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True)
class StoreRebuilt:
    """The server's store was rebuilt and switched over: where the client was, and where the new log takes over."""

    generation: int  # the store's generation now
    cursor: int  # the client's cursor, in the replaced log
    previous_head: int  # the replaced log's last cursor
    resume_after: int  # the rebuilt log's cursor that holds what the replaced one held up to previous_head
    message: str

    @property
    def missed(self) -> int:
        """Changes of the replaced log the client never received (0: it may resume with no gap)."""
        return max(0, self.previous_head - self.cursor)


class StoreRebuiltError(FeedError):
    """Raised with ``on_rebuild="raise"`` when the server's store was rebuilt; ``event`` says where to resume."""

    def __init__(self, event: StoreRebuilt) -> None:
        super().__init__("store-rebuilt", event.message)
        self.event = event


REBUILD_STRATEGIES = ("resume", "restart", "raise")


class ChangeClient:
    """Iterates over the changes of one subscription, resuming from its cursor after every disconnection."""

    def __init__(self, url: str, *, filters: Mapping[str, Any] | None = None, after: int | str = "now",
                 detail: str = "summary", batch: int = 100, retry: float = 1.0, max_retry: float = 30.0,
                 max_size: int | None = 64 * 1024 * 1024, on_rebuild: str = "resume",
                 on_rebuilt: Callable[[StoreRebuilt], None] | None = None) -> None:
        if on_rebuild not in REBUILD_STRATEGIES:
            raise ValueError(f"on_rebuild must be one of {', '.join(REBUILD_STRATEGIES)}, not {on_rebuild!r}")
        self.url = url
        self.filters = {k: v for k, v in (filters or {}).items() if v is not None}
        self.after: int | str = after
        self.cursor: int | None = after if isinstance(after, int) else None
        self.detail = detail
        self.batch = batch
        self.retry = retry
        self.max_retry = max_retry
        self.max_size = max_size
        self.caught_up = asyncio.Event()  # set once the first backfill ended
        self.reconnections = 0
        self.on_rebuild = on_rebuild
        self.on_rebuilt = on_rebuilt
        self.rebuilds: list[StoreRebuilt] = []
        self._ws: ClientConnection | None = None
        self._at_once = False  # reconnect without waiting (the store was switched over)

    def query(self) -> str:
        """The query string of the next connection: the filters, and ``after`` the last cursor handed out."""
        after = self.cursor if self.cursor is not None else self.after
        params: dict[str, Any] = {**self.filters, "after": after, "detail": self.detail}
        if self.batch:
            params["batch"] = self.batch
        return urlencode({k: ",".join(map(str, v)) if isinstance(v, list | tuple) else v for k, v in params.items()})

    async def __aenter__(self) -> ChangeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        delay = self.retry
        while True:
            try:
                async with connect(f"{self.url}?{self.query()}", max_size=self.max_size, compression=None) as ws:
                    self._ws = ws
                    async for message in ws:
                        for change in self._changes(orjson.loads(message)):
                            delay = self.retry
                            yield change
            except (TimeoutError, ConnectionClosed, OSError, InvalidHandshake) as exc:  # not InvalidURI: raised
                logger.warning("feed connection ended (%s); resuming after cursor %s in %.1fs", exc,
                               self.cursor if self.cursor is not None else self.after, delay)
            finally:
                self._ws = None
            self.reconnections += 1
            if self._at_once:
                self._at_once = False
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_retry)

    def _changes(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """The changes a server message carries (none for control messages); raises FeedError on a refusal."""
        kind = message.get("type")
        if kind == "change":
            changes = [message["change"]]
        elif kind == "changes":
            changes = message["changes"]
        else:
            if kind == "caught_up":
                self.caught_up.set()
            elif kind == "subscribed" and self.cursor is None:
                self.cursor = int(message["cursor"])  # "now" is resolved: resume from here, not from a later now
            elif kind == "error" and message.get("code") in FATAL_ERRORS:
                raise FeedError(str(message.get("code")), str(message.get("message")))
            elif kind == "error" and message.get("code") == "store-rebuilt":
                self._rebuilt(message)
            return []
        fresh = [c for c in changes if self.cursor is None or int(c["cursor"]) > self.cursor]
        if fresh:
            self.cursor = int(fresh[-1]["cursor"])
        return fresh

    def _rebuilt(self, message: dict[str, Any]) -> None:
        """The store was switched over: tell the application, then resume as ``on_rebuild`` says."""
        event = StoreRebuilt(int(message["generation"]), int(message["cursor"]), int(message["previous_head"]),
                             int(message["resume_after"]), str(message.get("message")))
        self.rebuilds.append(event)
        logger.warning("the feed's store was rebuilt (generation %s); cursor %s ended the old log at %s, %s missed; "
                       "%s", event.generation, event.cursor, event.previous_head, event.missed, self.on_rebuild)
        if self.on_rebuilt is not None:
            self.on_rebuilt(event)
        if self.on_rebuild == "raise":
            raise StoreRebuiltError(event)
        if self.on_rebuild == "restart":
            self.cursor, self.after = None, "start"
        else:
            self.cursor = event.resume_after
        self._at_once = True
