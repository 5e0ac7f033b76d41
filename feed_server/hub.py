"""The change hub: tails the store's change log once per process and serves it to every subscriber.

The log's cursors are gapless and committed in order, so reading ``cursor > last`` never misses a
change. Recent changes stay in a ring buffer; subscribers further behind read pages from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from psycopg2.pool import ThreadedConnectionPool

from core.store import reader

logger = logging.getLogger("ocds_live.feed")


class Database:
    """A small thread-safe psycopg2 pool; every query runs in a worker thread."""

    def __init__(self, url: str, maxconn: int = 8) -> None:
        self.pool = ThreadedConnectionPool(1, maxconn, url, application_name="ocds-live-feed")

    async def run(self, fn: Any, *args: Any) -> Any:
        def call() -> Any:
            conn = self.pool.getconn()
            try:
                return fn(conn, *args)
            except Exception:
                conn.rollback()
                raise
            finally:
                self.pool.putconn(conn)

        return await asyncio.to_thread(call)

    def close(self) -> None:
        self.pool.closeall()


class ChangeHub:
    def __init__(self, db: Database, *, ring_size: int = 20_000, poll_interval: float = 0.05) -> None:
        self.db = db
        self.ring: deque[dict[str, Any]] = deque(maxlen=ring_size)
        self.head = 0
        self.poll_interval = poll_interval
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.head = await self.db.run(reader.head)
        self._task = asyncio.create_task(self._tail(), name="change-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _tail(self) -> None:
        while True:
            try:
                events = await self.db.run(reader.changes_after, self.head, 1000)
            except Exception as exc:  # noqa: BLE001 - keep tailing through database restarts
                logger.warning("cannot read the change log (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            if events:
                self.ring.extend(events)
                self.head = events[-1]["cursor"]
                changed, self._changed = self._changed, asyncio.Event()
                changed.set()
            else:
                await asyncio.sleep(self.poll_interval)

    async def wait(self, position: int, timeout: float) -> None:
        """Return when the log has moved past ``position``, or after ``timeout`` seconds."""
        if self.head > position:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    async def read(self, after: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` changes with cursor > ``after`` (from memory when recent enough)."""
        if after >= self.head:
            return []
        if self.ring and self.ring[0]["cursor"] <= after + 1:
            start = after + 1 - self.ring[0]["cursor"]
            return [self.ring[i] for i in range(start, min(start + limit, len(self.ring)))]
        events: list[dict[str, Any]] = await self.db.run(reader.changes_after, after, limit)
        return events
