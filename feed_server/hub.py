"""The change hub: tails the store's change log once per process and serves it to every subscriber.

The log's cursors are gapless and committed in order, so reading ``cursor > last`` never misses a
change. Recent changes stay in a ring buffer; subscribers further behind read pages from the store.

Subscribers at the same position read the same page of the log, and subscribers holding the same
filter select the same changes from it: the hub decides and encodes that once per (filter, page) for
all of them (a :class:`Selection`), so the cost per subscriber is little more than its sends.

Each change is encoded once per detail level that some subscriber asked for: ``summary`` (the change
event as stored) and ``brief`` (the same event with only the path and op of each changed field).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from psycopg2.pool import ThreadedConnectionPool

from core.exceptions import OcdsLiveError, StoreUnavailableError
from core.filters import ChangeFilter
from core.profiles import CompilerSource
from core.store import reader
from core.store.connection import translated_errors
from feed_server.encoding import ascii_json, brief, compact
from feed_server.tail import LogTail

logger = logging.getLogger("ocds_live.feed")

Frame = tuple[str, int]  # an encoded ``changes`` message and the cursor of its last change
ENCODED_DETAILS = ("summary", "brief")  # the detail levels encoded from the event alone (not ``full``)
PageKey = tuple[ChangeFilter, int, int]  # a filter, and the first and last cursor of a page of the log
REACH_TIMEOUT = 10.0  # seconds a resume waits for this hub to read a cursor the store already holds
MAX_SELECTIONS = 20_000  # selections kept (most are of the last few steps, read by every live subscriber)


@dataclass
class Selection:
    """The changes of one page of the log that one filter selects, and their encodings as batches."""

    events: list[dict[str, Any]]
    frames: dict[tuple[str, int], list[Frame]] = field(default_factory=dict)  # (detail, batch bound) -> frames
    chars: int = 0  # characters held in ``frames``


def _chunks(events: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(events), size):
        yield events[start:start + size]


def _batch(bodies: list[str], last: int) -> Frame:
    return f'{{"type":"changes","cursor":{last},"changes":[{",".join(bodies)}]}}', last


class LogReplaced(OcdsLiveError):
    """The change log asked for was replaced by a rebuilt store's (``ocds-live replay --switch``).

    ``generation`` is the store now served; None while this server has not seen the switch yet (retry).
    """

    def __init__(self, cursor: int, generation: reader.Generation | None) -> None:
        super().__init__(replaced_error(cursor, generation)["message"])
        self.cursor = cursor
        self.generation = generation


def replaced_error(cursor: int, generation: reader.Generation | None) -> dict[str, Any]:
    """The error a subscriber gets for a cursor of a replaced log: what happened and what to do (docs/operating.md)."""
    if generation is None or generation.resume_after is None:
        return {"code": "store-switching", "cursor": cursor, "message": "the store is being switched over to a "
                "rebuilt one; retry in a few seconds"}
    return {"code": "store-rebuilt", "cursor": cursor, "generation": generation.generation,
            "previous_head": generation.previous_head, "resume_after": generation.resume_after,
            "message": f"the store was rebuilt from the release topic and switched over (generation "
                       f"{generation.generation}): cursor {cursor} belongs to the change log it replaced, which "
                       f"ended at cursor {generation.previous_head}. If you had every change up to "
                       f"{generation.previous_head}, resume with after={generation.resume_after}: the rebuilt log "
                       f"holds the same changes up to "
                       f"there. Otherwise you missed changes: re-read the records you follow, then resume with "
                       f"after={generation.resume_after} (or after=start for the whole rebuilt log)"}


class Database:
    """A small thread-safe psycopg2 pool; every query runs in a worker thread.

    It connects on demand, so it can be made while PostgreSQL is away. A query that finds PostgreSQL
    unreachable (or loses it midway) raises :class:`StoreUnavailableError` (the app answers 503) and its
    connection is dropped, so the next query connects anew once the server is back."""

    def __init__(self, url: str, maxconn: int = 8) -> None:
        self.url = url
        self.pool = ThreadedConnectionPool(0, maxconn, url, application_name="ocds-live-feed", connect_timeout=5)

    async def run(self, fn: Any, *args: Any) -> Any:
        def call() -> Any:
            with translated_errors():
                conn = self.pool.getconn()
            broken = False
            try:
                with translated_errors():
                    return fn(conn, *args)
            except StoreUnavailableError:
                broken = True
                raise
            except Exception:
                conn.rollback()
                raise
            finally:
                self.pool.putconn(conn, close=broken or bool(conn.closed))

        return await asyncio.to_thread(call)

    async def wait_until_reachable(self, where: str, say_every: float = 10.0) -> None:
        """Return once PostgreSQL answers; until then say every ``say_every`` seconds that we wait, and why."""
        loop = asyncio.get_running_loop()
        said = -say_every
        while True:
            try:
                await self.run(reader.head)
                return
            except StoreUnavailableError as exc:
                if loop.time() - said >= say_every:
                    said = loop.time()
                    logger.warning("waiting for PostgreSQL at %s (%s); the feed server starts once it answers",
                                   where, exc)
                await asyncio.sleep(1.0)

    def close(self) -> None:
        self.pool.closeall()


class ChangeHub:
    """Tails the change log: each step's changes are read by a :class:`LogTail` thread once a commit's NOTIFY
    arrives (polling every ``poll_interval`` as a fallback), the next read going on while a step writes.

    A waiting subscriber holds one future (no task or timer per subscriber); the hub resolves all of them
    at each step of the log: when new changes arrive, or every ``heartbeat`` seconds when none do.

    Two steps' reads start at least ``min_step`` seconds apart: the changes of commits that come closer
    wait for the next step and go out together (a step whose writes take longer is followed at once).
    Every step wakes every live subscriber and costs each one a message per change it selects, or per
    ``batch``; workers that commit small batches often (to keep their own latency low) would otherwise
    multiply the frames each subscriber receives.
    """

    def __init__(self, db: Database, compiler: CompilerSource, *, ring_size: int = 20_000,
                 poll_interval: float = 1.0, heartbeat: float = 15.0, cache_chars: int = 64_000_000,
                 min_step: float = 0.0) -> None:
        self.db = db
        self.compiler = compiler  # brings stored compiled releases up to date (detail=full)
        self._log: LogTail | None = None
        self.ring: deque[dict[str, Any]] = deque(maxlen=ring_size)
        self.head = 0
        self.poll_interval = poll_interval
        self.heartbeat = heartbeat
        self.min_step = min_step
        self._waiters: list[asyncio.Future[None]] = []  # one per subscriber waiting for the next step
        self._tasks: list[asyncio.Task[None]] = []
        # detail -> cursor -> encoded change message, for changes in the ring
        self._messages: dict[str, dict[int, str]] = {detail: {} for detail in ENCODED_DETAILS}
        self._brief: dict[int, orjson.Fragment] = {}  # cursor -> the brief changes of a change in the ring
        self._verdicts: dict[tuple[ChangeFilter, int], bool] = {}  # (filter, cursor) -> matches
        self._pages: dict[tuple[int, int], list[dict[str, Any]]] = {}  # (after, limit) -> page, until the next step
        self._selections: dict[PageKey, Selection] = {}  # oldest first
        self._selection_chars = 0
        self.cache_chars = cache_chars  # at most this many characters of encoded batches are kept
        self._full: dict[tuple[PageKey, int], asyncio.Task[list[Frame]]] = {}  # until the next step
        # called at each step with the head before it, before any waiting subscriber wakes (feed_server.fanout)
        self.step_listeners: list[Callable[[int], None]] = []
        self.beat_listeners: list[Callable[[], None]] = []  # called at each heartbeat tick
        # called when the store was switched over to a rebuilt one, with its generation (feed_server.ws)
        self.switch_listeners: list[Callable[[reader.Generation], None]] = []
        self.generation = reader.Generation(1, 0)

    async def start(self) -> None:
        self.head = await self.db.run(reader.head)
        self.generation = await self.db.run(reader.generation)
        self._log = LogTail(self.db.url, self.poll_interval)
        self._log.start()
        self._tasks = [asyncio.create_task(self._tail(self._log), name="change-hub"),
                       asyncio.create_task(self._beat(), name="change-hub-heartbeat")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._log is not None:
            await asyncio.to_thread(self._log.stop)

    def _resolve(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():  # a cancelled waiter (its subscriber left) is done already
                waiter.set_result(None)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            self._notify(self.beat_listeners)
            self._resolve()

    def _notify(self, listeners: list[Callable[..., None]], *args: Any) -> None:
        for listener in listeners:
            try:
                listener(*args)
            except Exception:  # a listener's bug must not stop the log for everyone
                logger.exception("change hub listener %r failed", listener)

    def matches(self, change_filter: ChangeFilter, event: dict[str, Any]) -> bool:
        """``change_filter.matches(event)``, decided once per distinct filter for all its subscribers."""
        if change_filter.empty:
            return True
        key = (change_filter, event["cursor"])
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdicts[key] = change_filter.matches(event)
        return verdict

    def encoded(self, event: dict[str, Any], detail: str = "summary") -> str:
        """The ``change`` message of an event at ``detail`` (``summary`` or ``brief``), serialised once for
        every subscriber that gets it."""
        cursor: int = event["cursor"]
        cache = self._messages[detail]
        text = cache.get(cursor)
        if text is None:
            payload = event
            if detail == "brief":
                kept = self._brief.get(cursor)
                payload = brief(event) if kept is None else {**event, "changes": kept}
            text = f'{{"type":"change","cursor":{cursor},"change":{ascii_json(payload)}}}'
            if self.ring and cursor >= self.ring[0]["cursor"]:
                cache[cursor] = text
        return text

    def _body(self, event: dict[str, Any], detail: str) -> str:
        """The event's JSON at ``detail``, cut from its cached ``change`` message."""
        return self.encoded(event, detail)[len(f'{{"type":"change","cursor":{event["cursor"]},"change":'):-1]

    async def _tail(self, log: LogTail) -> None:
        next_read: asyncio.Future[tuple[list[dict[str, Any]], float]] | None = None
        while True:
            try:
                if next_read is None:
                    next_read = log.read(self.head, 1000)
                events, started = await next_read
                next_read = None
                if (not events or events[0]["cursor"] != self.head + 1) and await self._switched():
                    continue
            except Exception as exc:  # noqa: BLE001 - keep tailing through database restarts
                next_read = None
                logger.warning("cannot read the change log (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            if events:
                before = self.head
                self.append(events)
                # the next step's read goes on in the tail's thread while this step writes to subscribers
                next_read = log.read(self.head, 1000, started + self.min_step)
                self._notify(self.step_listeners, before)
                self._resolve()

    async def _switched(self) -> bool:
        """Whether the store was switched over to a rebuilt one; if so, serve the old log to its end (from the
        schema that keeps it), then forget it, take the new one, and tell the switch listeners."""
        found: reader.Generation = await self.db.run(reader.generation)
        if found.generation == self.generation.generation:
            return False
        if found.previous_schema and found.previous_head and found.generation == self.generation.generation + 1:
            while self.head < found.previous_head:
                events = await self.db.run(reader.retired_changes_after, found.previous_schema, self.head,
                                           found.previous_head, 1000)
                if not events or events[0]["cursor"] != self.head + 1:
                    break
                before = self.head
                self.append(events)
                self._notify(self.step_listeners, before)
                self._resolve()
        logger.warning("the store was switched over to generation %s; subscribers of the old change log are told "
                       "to resume from cursor %s", found.generation, found.resume_after)
        self.generation = found
        self.ring.clear()
        caches: list[dict[Any, Any]] = [*self._messages.values(), self._brief, self._verdicts, self._pages,
                                        self._selections, self._full]
        for cache in caches:
            cache.clear()
        self._selection_chars = 0
        self.head = await self.db.run(reader.head)
        self._notify(self.switch_listeners, found)
        self._resolve()
        return True

    def append(self, events: list[dict[str, Any]]) -> None:
        """Take the next changes of the log (cursors right after the head) into memory: one step's worth."""
        for event in events:
            kept, brief_changes = compact(event)
            self.ring.append(kept)
            if brief_changes is not None:
                self._brief[event["cursor"]] = brief_changes
        self.head = events[-1]["cursor"]
        self._pages.clear()
        self._full.clear()
        low = self.ring[0]["cursor"]
        caches: list[dict[int, Any]] = [*self._messages.values(), self._brief]
        for cache in caches:
            while cache and next(iter(cache)) < low:
                del cache[next(iter(cache))]
        if len(self._verdicts) > 200_000:
            self._verdicts.clear()
        self._prune_selections(low)

    async def wait(self) -> None:
        """Return at the next step of the log (new changes), or at the next heartbeat tick."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter  # cancelling this wait cancels only this waiter: cheaper than shielding one shared future

    async def reach(self, cursor: int) -> int:
        """The head, once it is at ``cursor`` if the store holds that cursor: a subscriber may resume with a
        cursor another feed server sent before this hub read it (each server tails the log on its own), which
        is waited for, not refused. Returns sooner, below ``cursor``, when the store does not hold it."""
        if cursor <= self.head or cursor > await self.db.run(reader.head):
            return self.head
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REACH_TIMEOUT + self.min_step
        while self.head < cursor and loop.time() < deadline:
            if self._log is not None:
                self._log.hurry()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wait(), deadline - loop.time())
        return self.head

    async def read(self, after: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` changes with cursor > ``after`` (from memory when recent enough).

        Do not change the list: it is shared with every reader at the same position until the next step.
        """
        if after < self.generation.base:
            raise LogReplaced(after, self.generation)
        page = self.recent(after, limit)
        if page is not None:
            return page
        events: list[dict[str, Any]] = await self.db.run(reader.changes_after, after, limit)
        if events and events[0]["cursor"] != after + 1 and after >= self.generation.base:
            raise LogReplaced(after, None)  # the store was switched and this server has not seen it yet
        return events

    def recent(self, after: int, limit: int) -> list[dict[str, Any]] | None:
        """Like :meth:`read` when the changes after ``after`` are in memory (else None), without waiting."""
        if after >= self.head:
            return []
        page = self._pages.get((after, limit))
        if page is not None:
            return page
        if self.ring and self.ring[0]["cursor"] <= after + 1:
            start = after + 1 - self.ring[0]["cursor"]
            page = self._pages[after, limit] = [self.ring[i] for i in range(start, min(start + limit, len(self.ring)))]
            return page
        return None

    def selection(self, change_filter: ChangeFilter, page: list[dict[str, Any]],
                  among: list[dict[str, Any]] | None = None) -> Selection:
        """The changes of ``page`` (a non-empty slice of the log) that match, decided once per filter.

        ``among``: the only changes of the page that may match, in order (the fan-out's index of a step
        narrows them down), each then decided by the filter itself."""
        key = (change_filter, page[0]["cursor"], page[-1]["cursor"])
        found = self._selections.get(key)
        if found is None:
            if change_filter.empty:
                events = page
            elif among is not None:
                events = [e for e in among if change_filter.matches(e)]
            else:
                events = [e for e in page if self.matches(change_filter, e)]
            found = self._selections[key] = Selection(events)
            if len(self._selections) > MAX_SELECTIONS:
                self._prune_selections(0)
        return found

    def frames(self, change_filter: ChangeFilter, page: list[dict[str, Any]], batch: int,
               detail: str = "summary", among: list[dict[str, Any]] | None = None) -> list[Frame]:
        """The matching changes of ``page`` as ``changes`` messages of at most ``batch`` changes each, at
        ``detail`` (``summary`` or ``brief``)."""
        found = self.selection(change_filter, page, among)
        frames = found.frames.get((detail, batch))
        if frames is None:
            frames = found.frames[detail, batch] = [
                _batch([self._body(e, detail) for e in chunk], chunk[-1]["cursor"])
                for chunk in _chunks(found.events, batch)
            ]
            chars = sum(len(text) for text, _ in frames)
            found.chars += chars
            self._selection_chars += chars
            if self._selection_chars > self.cache_chars:
                self._prune_selections(0)
        return frames

    def messages(self, change_filter: ChangeFilter, page: list[dict[str, Any]], batch: int,
                 detail: str = "summary", among: list[dict[str, Any]] | None = None) -> list[Frame]:
        """The matching changes of ``page`` as the messages a subscriber gets: ``changes`` messages of at most
        ``batch`` changes, or with ``batch`` 0 one ``change`` message each (``summary`` or ``brief``)."""
        if batch:
            return self.frames(change_filter, page, batch, detail, among)
        return [(self.encoded(e, detail), e["cursor"]) for e in self.selection(change_filter, page, among).events]

    async def full_frames(self, change_filter: ChangeFilter, page: list[dict[str, Any]], batch: int) -> list[Frame]:
        """Like :meth:`frames` with each change's current ``compiledRelease``; shared until the next step."""
        found = self.selection(change_filter, page)
        key = ((change_filter, page[0]["cursor"], page[-1]["cursor"]), batch)
        task = self._full.get(key)
        if task is None:
            task = self._full[key] = asyncio.ensure_future(self._build_full(found.events, batch))
        return await asyncio.shield(task)

    async def _build_full(self, events: list[dict[str, Any]], batch: int) -> list[Frame]:
        if not events:
            return []
        records = await self.db.run(reader.compiled_many, list({e["ocid"] for e in events}), self.compiler)
        full = [ascii_json({**e, "compiledRelease": records.get(e["ocid"])}) for e in events]
        return [_batch(full[start:start + batch], events[min(start + batch, len(events)) - 1]["cursor"])
                for start in range(0, len(events), batch)]

    def _prune_selections(self, low: int) -> None:
        """Forget selections of pages that start before ``low``; over a budget, the oldest half too."""
        over = self._selection_chars > self.cache_chars or len(self._selections) > MAX_SELECTIONS
        keep_chars, keep = (self.cache_chars // 2, MAX_SELECTIONS // 2) if over else (self.cache_chars, MAX_SELECTIONS)
        while self._selections:
            key = next(iter(self._selections))
            if key[1] >= low and self._selection_chars <= keep_chars and len(self._selections) <= keep:
                break
            self._selection_chars -= self._selections.pop(key).chars
