"""feed_server.tail: the change log's head read in a thread, woken by the processor's NOTIFY."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator

import psycopg2
import pytest

from core.exceptions import StoreUnavailableError
from core.settings import Settings
from core.store import reader
from feed_server.tail import LogTail
from tests.support.changes import append_events, synthetic_event
from tests.support.stack import base_settings, fresh_stack


@pytest.fixture(scope="module")
def stack() -> Iterator[Settings]:
    with fresh_stack(base_settings()) as settings:
        yield settings


def _head(settings: Settings) -> int:
    conn = psycopg2.connect(settings.database_url)
    try:
        return reader.head(conn)
    finally:
        conn.close()


def _commit_later(settings: Settings, delay: float, n: int) -> threading.Thread:
    def commit() -> None:
        time.sleep(delay)
        append_events(settings, [synthetic_event(random.Random(n), n)])

    thread = threading.Thread(target=commit)
    thread.start()
    return thread


async def _tail(settings: Settings, poll_interval: float) -> LogTail:
    assert settings.database_url is not None
    tail = LogTail(settings.database_url, poll_interval)
    tail.start()
    events, _ = await tail.read(_head(settings), 10)  # the first read goes at once
    assert events == [] and tail.listening.is_set()
    return tail


def test_a_read_waits_for_a_commit_and_returns_its_changes_as_soon_as_it_is_notified(stack: Settings) -> None:
    async def run() -> tuple[list[int], float]:
        tail = await _tail(stack, poll_interval=30.0)
        try:
            head = _head(stack)
            asked = time.monotonic()
            read = tail.read(head, 10)
            committer = _commit_later(stack, 0.3, 1)
            events, started = await asyncio.wait_for(read, 10)
            committer.join()
            return [e["cursor"] for e in events], started - asked
        finally:
            tail.stop()

    cursors, waited = asyncio.run(run())
    assert len(cursors) == 1  # the commit's change, long before the 30 s poll
    assert 0.25 <= waited < 5.0, waited  # it read only once the commit was notified


def test_the_next_read_goes_on_while_the_event_loop_is_busy(stack: Settings) -> None:
    """The hub asks for the next read, then writes a step without yielding: a commit made meanwhile is read in
    the tail's thread, so its changes are ready when the loop comes back."""
    async def run() -> tuple[float, float, int]:
        tail = await _tail(stack, poll_interval=30.0)
        try:
            head = _head(stack)
            read = tail.read(head, 10)
            committer = _commit_later(stack, 0.1, 2)
            time.sleep(1.5)  # the event loop blocked, as by a long step's writes
            unblocked = time.monotonic()
            committer.join()
            events, started = await read
            return started, unblocked, len(events)
        finally:
            tail.stop()

    started, unblocked, count = asyncio.run(run())
    assert count == 1 and started < unblocked - 0.5, (started, unblocked)


def test_without_a_commit_a_read_returns_nothing_after_the_poll_interval(stack: Settings) -> None:
    async def run() -> tuple[list[object], float]:
        tail = await _tail(stack, poll_interval=0.3)
        try:
            asked = time.monotonic()
            events, started = await asyncio.wait_for(tail.read(_head(stack), 10), 10)
            return list(events), started - asked
        finally:
            tail.stop()

    events, waited = asyncio.run(run())
    assert events == [] and waited >= 0.25, waited


def test_hurry_reads_at_once_without_waiting_for_a_notify(stack: Settings) -> None:
    async def run() -> float:
        tail = await _tail(stack, poll_interval=30.0)
        try:
            asked = time.monotonic()
            read = tail.read(_head(stack), 10)
            await asyncio.sleep(0.2)
            tail.hurry()
            await asyncio.wait_for(read, 10)
            return time.monotonic() - asked
        finally:
            tail.stop()

    assert 0.15 <= asyncio.run(run()) < 5.0


def test_a_read_is_not_made_before_it_is_due(stack: Settings) -> None:
    async def run() -> float:
        tail = await _tail(stack, poll_interval=30.0)
        try:
            asked = time.monotonic()
            _commit_later(stack, 0.0, 3).join()
            _, started = await asyncio.wait_for(tail.read(_head(stack) - 1, 10, asked + 0.4), 10)
            return started - asked
        finally:
            tail.stop()

    assert asyncio.run(run()) >= 0.4


def test_a_read_with_postgresql_away_fails_with_store_unavailable() -> None:
    async def run() -> None:
        tail = LogTail("postgresql://postgres@127.0.0.1:1/postgres", poll_interval=0.1)
        tail.start()
        try:
            await asyncio.wait_for(tail.read(0, 10), 20)
        finally:
            tail.stop()

    with pytest.raises(StoreUnavailableError, match="PostgreSQL failed"):
        asyncio.run(run())
