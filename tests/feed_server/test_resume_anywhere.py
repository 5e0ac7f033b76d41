"""Any feed server resumes any subscriber's cursor: two `ocds-live serve` processes on one store.

Each feed server tails the change log on its own, so one may already have sent a cursor that the other has
not read yet. A subscriber that moves to the one behind must be served from its cursor (no gap, no repeat),
not refused as if the cursor were not in the log. The second server here steps at most every 3 s
(``OCDS_LIVE_FEED_STEP``), so it is reliably behind the first when the subscriber moves.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from core.settings import Settings
from tests.support.changes import append_events, synthetic_event
from tests.support.stack import Process, base_settings, free_port, fresh_stack, wait_http

pytestmark = pytest.mark.integration

SLOW_STEP = 3.0


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[Settings, str, str]]:
    with fresh_stack(base_settings()) as settings:
        fast = settings.model_copy(update={"port": free_port()})
        slow = settings.model_copy(update={"port": free_port(), "feed_step": SLOW_STEP})
        servers = [Process(s, "serve", log=tmp_path / f"serve-{s.port}.log") for s in (fast, slow)]
        try:
            for s in (fast, slow):
                wait_http(f"{s.base_url}/healthz")
            yield settings, fast.base_url, slow.base_url
        finally:
            for server in servers:
                server.stop()


def _events(start: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(start)
    return [synthetic_event(rng, n) for n in range(start, start + count)]


def _changes(base: str, after: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/api/changes?after={after}&limit=500", timeout=10) as response:  # noqa: S310
        body: dict[str, Any] = json.loads(response.read())
        return body


def _wait_head(base: str, head: int) -> None:
    deadline = time.monotonic() + 20
    while _changes(base, 0)["head"] < head:
        assert time.monotonic() < deadline, f"{base} did not reach cursor {head}"
        time.sleep(0.05)


async def _read(url: str, until: int) -> list[int]:
    """The cursors a websocket subscription at ``url`` receives up to ``until`` (a refusal fails the test)."""
    got: list[int] = []
    async with websockets.connect(url, max_size=None) as ws:
        while not got or got[-1] < until:
            message = json.loads(await asyncio.wait_for(ws.recv(), 20))
            assert message["type"] != "error", message
            if message["type"] == "changes":
                got += [c["cursor"] for c in message["changes"]]
    return got


def test_a_subscriber_resumes_on_a_feed_server_that_is_behind(two_servers: tuple[Settings, str, str]) -> None:
    """Changes read from one feed server, then a resume on another that has not read them yet: the rest
    arrives there, over the websocket and over GET /api/changes, with no gap and no repeat."""
    settings, fast, slow = two_servers
    append_events(settings, _events(1, 20))
    _wait_head(slow, 20)  # the slow server has just stepped: its next step is SLOW_STEP away
    append_events(settings, _events(21, 10))

    async def run() -> tuple[list[int], list[int]]:
        first = await _read(f"ws{fast[4:]}/ws/changes?after=0&batch=7", 30)
        moved = asyncio.ensure_future(_read(f"ws{slow[4:]}/ws/changes?after=30&batch=7", 40))
        await asyncio.sleep(0.2)
        append_events(settings, _events(31, 10))
        return first, await moved

    first, second = asyncio.run(run())
    assert first == list(range(1, 31))
    assert second == list(range(31, 41))


def test_the_pull_api_resumes_on_a_feed_server_that_is_behind(two_servers: tuple[Settings, str, str]) -> None:
    """GET /api/changes?after=<a cursor the other server sent> on a feed server not there yet: the changes
    after it, not 404."""
    settings, fast, slow = two_servers
    append_events(settings, _events(1, 20))
    _wait_head(slow, 20)
    append_events(settings, _events(21, 10))
    _wait_head(fast, 30)
    page = _changes(slow, 25)
    assert [c["cursor"] for c in page["changes"]] == list(range(26, 31))
    assert page["next_cursor"] == 30
