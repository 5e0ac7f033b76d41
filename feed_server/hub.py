"""The change hub: tails the store's change log once per process and serves it to every subscriber.

The log's cursors are gapless and committed in order, so reading ``cursor > last`` never misses a
change. Recent changes stay in a ring buffer; subscribers further behind read pages from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import threading
from collections import deque
from typing import Any

import orjson
import psycopg2
from psycopg2.pool import ThreadedConnectionPool

from core.filters import ChangeFilter
from core.store import reader

logger = logging.getLogger("ocds_live.feed")

CHANNEL = "ocds_changes"  # the stream processor NOTIFYs it in each transaction that appends changes


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
    """Tails the change log: woken by PostgreSQL NOTIFY at each commit, polling as a fallback.

    Subscribers wait on one shared future per step of the log (no task or timer per subscriber), which
    the hub resolves when new changes arrive, or every ``heartbeat`` seconds when none do.
    """

    def __init__(self, db: Database, url: str | None = None, *, ring_size: int = 20_000,
                 poll_interval: float = 1.0, heartbeat: float = 15.0) -> None:
        self.db = db
        self.url = url
        self.ring: deque[dict[str, Any]] = deque(maxlen=ring_size)
        self.head = 0
        self.poll_interval = poll_interval
        self.heartbeat = heartbeat
        self._step: asyncio.Future[None] | None = None
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = threading.Event()
        self._messages: dict[int, str] = {}  # cursor -> encoded change message, for changes in the ring
        self._verdicts: dict[tuple[ChangeFilter, int], bool] = {}  # (filter, cursor) -> matches
        self._stop = threading.Event()

    async def start(self) -> None:
        self.head = await self.db.run(reader.head)
        self._tasks = [asyncio.create_task(self._tail(), name="change-hub"),
                       asyncio.create_task(self._beat(), name="change-hub-heartbeat")]
        if self.url is not None:
            loop = asyncio.get_running_loop()
            threading.Thread(target=self._listen, args=(loop,), name="change-hub-listen", daemon=True).start()

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """LISTEN in a thread of its own; each notification wakes the tail loop at once."""
        while not self._stop.is_set():
            try:
                conn = psycopg2.connect(self.url, application_name="ocds-live-listen")
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute(f"LISTEN {CHANNEL}")
                self._listening.set()
                while not self._stop.is_set():
                    if select.select([conn], [], [], 1.0)[0]:
                        conn.poll()
                        if conn.notifies:
                            conn.notifies.clear()
                            loop.call_soon_threadsafe(self._wakeup.set)
                conn.close()
            except Exception as exc:  # noqa: BLE001 - fall back to polling until PostgreSQL is back
                self._listening.clear()
                logger.warning("LISTEN failed (%s); polling until it works again", exc)
                self._stop.wait(2.0)

    def _resolve(self) -> None:
        step, self._step = self._step, None
        if step is not None and not step.done():
            step.set_result(None)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            self._resolve()

    def matches(self, change_filter: ChangeFilter, event: dict[str, Any]) -> bool:
        """``change_filter.matches(event)``, decided once per distinct filter for all its subscribers."""
        if change_filter.empty:
            return True
        key = (change_filter, event["cursor"])
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdicts[key] = change_filter.matches(event)
        return verdict

    def encoded(self, event: dict[str, Any]) -> str:
        """The ``change`` message of an event, serialised once for every subscriber that gets it."""
        cursor: int = event["cursor"]
        text = self._messages.get(cursor)
        if text is None:
            text = orjson.dumps({"type": "change", "cursor": cursor, "change": event}).decode()
            if self.ring and cursor >= self.ring[0]["cursor"]:
                self._messages[cursor] = text
        return text

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
                low = self.ring[0]["cursor"]
                while self._messages and next(iter(self._messages)) < low:
                    del self._messages[next(iter(self._messages))]
                if len(self._verdicts) > 200_000:
                    self._verdicts.clear()
                self._resolve()
                continue
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.poll_interval)

    async def wait(self) -> None:
        """Return at the next step of the log (new changes), or at the next heartbeat tick."""
        if self._step is None:
            self._step = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._step)

    async def read(self, after: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` changes with cursor > ``after`` (from memory when recent enough)."""
        if after >= self.head:
            return []
        if self.ring and self.ring[0]["cursor"] <= after + 1:
            start = after + 1 - self.ring[0]["cursor"]
            return [self.ring[i] for i in range(start, min(start + limit, len(self.ring)))]
        events: list[dict[str, Any]] = await self.db.run(reader.changes_after, after, limit)
        return events
