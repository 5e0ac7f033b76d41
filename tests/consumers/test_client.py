"""consumers.client on a real feed server: every change once, in order, across restarts and refusals."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers.client import ChangeClient, FeedError, StoreRebuilt, StoreRebuiltError
from core.settings import Settings
from tests.support.changes import append_events, synthetic_event
from tests.support.stack import Process, base_settings, free_port, fresh_stack, wait_http

pytestmark = pytest.mark.integration


@pytest.fixture()
def stack() -> Iterator[Settings]:
    with fresh_stack(base_settings(), port=free_port()) as settings:
        yield settings


def _serve(settings: Settings, log: Path) -> Process:
    process = Process(settings, "serve", log=log)
    wait_http(f"{settings.base_url}/healthz")
    return process


def _url(settings: Settings) -> str:
    return f"{settings.base_url.replace('http', 'ws', 1)}/ws/changes"


def test_client_yields_every_change_once_in_order_across_a_server_restart(stack: Settings, tmp_path: Path) -> None:
    """Changes written before, while and after the feed server is down all reach the client once, in cursor
    order: it resumes from the last cursor it handed out."""
    rng = random.Random(3)
    append_events(stack, [synthetic_event(rng, n) for n in range(1, 101)])
    server = _serve(stack, tmp_path / "serve-1.log")

    async def scenario() -> tuple[list[int], int]:
        nonlocal server
        client = ChangeClient(_url(stack), after=0, batch=7, retry=0.2)
        cursors: list[int] = []
        async for change in client:
            cursors.append(change["cursor"])
            if len(cursors) == 50:
                await asyncio.to_thread(server.stop)
                await asyncio.to_thread(append_events, stack, [synthetic_event(rng, n) for n in range(101, 201)])
                server = await asyncio.to_thread(_serve, stack, tmp_path / "serve-2.log")
                await asyncio.to_thread(append_events, stack, [synthetic_event(rng, n) for n in range(201, 301)])
            if change["cursor"] == 300:
                break
        return cursors, client.reconnections

    try:
        cursors, reconnections = asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        server.stop()
    assert cursors == list(range(1, 301))
    assert reconnections >= 1


def test_client_filters_and_resumes_from_now(stack: Settings, tmp_path: Path) -> None:
    """``after='now'`` yields only what comes after the subscription, and only what the filters match."""
    rng = random.Random(4)
    append_events(stack, [synthetic_event(rng, n) for n in range(1, 51)])
    server = _serve(stack, tmp_path / "serve.log")
    later = [synthetic_event(rng, n) for n in range(51, 151)]
    kind = later[0]["kind"]

    async def scenario() -> list[dict[str, object]]:
        client = ChangeClient(_url(stack), filters={"kind": kind}, batch=0)
        got: list[dict[str, object]] = []

        async def consume() -> None:
            async for change in client:
                got.append(change)

        task = asyncio.ensure_future(consume())
        await asyncio.wait_for(client.caught_up.wait(), 20)
        await asyncio.to_thread(append_events, stack, later)
        want = sum(e["kind"] == kind for e in later)
        for _ in range(200):
            if len(got) >= want:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        return got

    try:
        got = asyncio.run(scenario())
    finally:
        server.stop()
    assert [c["release_id"] for c in got] == [e["release_id"] for e in later if e["kind"] == kind]
    assert all(int(str(c["cursor"])) > 50 for c in got)


def test_client_raises_feed_error_for_a_cursor_the_log_does_not_hold(stack: Settings, tmp_path: Path) -> None:
    """An unknown cursor is an explicit FeedError (code ``unknown-cursor``), never a silent retry."""
    append_events(stack, [synthetic_event(random.Random(5), n) for n in range(1, 11)])
    server = _serve(stack, tmp_path / "serve.log")

    async def scenario() -> None:
        async for _ in ChangeClient(_url(stack), after=10_000, retry=0.1):
            pass

    try:
        with pytest.raises(FeedError) as caught:
            asyncio.run(asyncio.wait_for(scenario(), 20))
    finally:
        server.stop()
    assert caught.value.code == "unknown-cursor"


REBUILT = {"type": "error", "code": "store-rebuilt", "cursor": 40, "generation": 2, "previous_head": 50,
           "resume_after": 1_000_000_000_048, "message": "the store was rebuilt ..."}


def test_store_rebuilt_is_handled_as_the_client_is_told() -> None:
    """On store-rebuilt the client tells the application (with the changes it missed), then resumes from
    resume_after, restarts from the rebuilt log's start, or raises StoreRebuiltError, as asked."""
    seen: list[StoreRebuilt] = []
    resume = ChangeClient("ws://unused/ws/changes", after=40, on_rebuilt=seen.append)
    assert resume._changes(REBUILT) == []
    assert seen[0].missed == 10 and seen[0].generation == 2
    assert "after=1000000000048" in resume.query()
    assert resume._changes({"type": "change", "cursor": 1_000_000_000_049,
                            "change": {"cursor": 1_000_000_000_049}}) == [{"cursor": 1_000_000_000_049}]

    restart = ChangeClient("ws://unused/ws/changes", after=40, on_rebuild="restart")
    restart._changes({**REBUILT, "cursor": 50})
    assert restart.rebuilds[0].missed == 0 and "after=start" in restart.query()

    strict = ChangeClient("ws://unused/ws/changes", after=40, on_rebuild="raise")
    with pytest.raises(StoreRebuiltError) as raised:
        strict._changes(REBUILT)
    assert raised.value.code == "store-rebuilt" and raised.value.event.resume_after == 1_000_000_000_048
    with pytest.raises(ValueError, match="on_rebuild"):
        ChangeClient("ws://unused/ws/changes", on_rebuild="ignore")
