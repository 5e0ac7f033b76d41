"""A subscriber's client for ``WS /ws/changes``: every change once, in order, across reconnections.

    async with ChangeClient("ws://127.0.0.1:8000/ws/changes", filters={"buyer": "MX-UC-0001"}) as client:
        async for change in client:
            ...  # a change event (docs/websocket.md); client.cursor is its cursor

The client remembers the cursor of the last change it handed out and, whenever the connection ends
(the network, a restart of the server, or a close for being too slow: 4008), connects again with
``after=<that cursor>``: the server's log is gapless, so nothing is missed and nothing comes twice.
A cursor the server no longer holds (4004) or a subscription it refuses raises :class:`FeedError`;
that is never retried in silence. Batches (``batch``) are unpacked: the iterator yields changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
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


class ChangeClient:
    """Iterates over the changes of one subscription, resuming from its cursor after every disconnection."""

    def __init__(self, url: str, *, filters: Mapping[str, Any] | None = None, after: int | str = "now",
                 detail: str = "summary", batch: int = 100, retry: float = 1.0, max_retry: float = 30.0,
                 max_size: int | None = 64 * 1024 * 1024) -> None:
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
        self._ws: ClientConnection | None = None

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
            return []
        fresh = [c for c in changes if self.cursor is None or int(c["cursor"]) > self.cursor]
        if fresh:
            self.cursor = int(fresh[-1]["cursor"])
        return fresh
