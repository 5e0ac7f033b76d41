"""`ocds-live serve`'s websocket front: several processes on one port, live groups, the ASGI path kept."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import websockets

from core.settings import Settings
from feed_server.fanout import RUN, _runs
from tests.support.changes import append_events, synthetic_event
from tests.support.stack import Process, base_settings, free_port, fresh_stack, wait_http

pytestmark = pytest.mark.integration


def _ws(settings: Settings, query: str = "") -> str:
    return f"ws://{settings.host}:{settings.port}/ws/changes{query}"


@pytest.fixture(scope="module")
def stack() -> Iterator[Settings]:
    with fresh_stack(base_settings(), port=free_port(), ws_send_timeout=1.0) as settings:
        append_events(settings, [synthetic_event(random.Random(3), n) for n in range(1, 51)])
        yield settings


def _serve(settings: Settings, log: Path, *args: str) -> Process:
    process = Process(settings, "serve", *args, log=log)
    wait_http(f"{settings.base_url}/healthz")
    return process


async def _live(url: str, count: int) -> list[Any]:
    """``count`` connections at ``url``, each past its ``caught_up``."""
    conns = [await websockets.connect(url, max_size=None) for _ in range(count)]
    for conn in conns:
        while json.loads(await asyncio.wait_for(conn.recv(), 10))["type"] != "caught_up":
            pass
    return conns


async def _next_changes(conn: Any, until: int) -> list[int]:
    """Cursors received on ``conn`` up to ``until``."""
    got: list[int] = []
    while not got or got[-1] < until:
        message = json.loads(await asyncio.wait_for(conn.recv(), 10))
        if message["type"] == "change":
            got.append(message["cursor"])
        elif message["type"] == "changes":
            got += [c["cursor"] for c in message["changes"]]
    return got


def _listening(process: Process, port: int) -> list[int]:
    """The pids of ``process``'s children that listen on ``port``."""
    return [child.pid for child in psutil.Process(process.proc.pid).children()
            if any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                   for c in child.net_connections("tcp"))]


def test_workers_share_the_port_and_each_delivers_live_changes(stack: Settings, tmp_path: Path) -> None:
    """With --workers 2, two processes listen on the port (SO_REUSEPORT), connections land on both, and every
    subscriber on either gets each new change exactly once."""
    process = _serve(stack, tmp_path / "serve.log", "--workers", "2")
    try:
        deadline = time.monotonic() + 30  # the first worker may answer /healthz before the second listens
        while len(_listening(process, stack.port)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        async def run() -> tuple[list[list[int]], dict[int, int]]:
            conns = await _live(_ws(stack, "?batch=10"), 24)
            held: dict[int, int] = {}
            for child in psutil.Process(process.proc.pid).children():
                ours = [c for c in child.net_connections("tcp") if c.laddr and c.laddr.port == stack.port]
                if any(c.status == psutil.CONN_LISTEN for c in ours):  # a worker, not multiprocessing's helper
                    held[child.pid] = sum(c.status == psutil.CONN_ESTABLISHED for c in ours)
            rng = random.Random(9)
            await asyncio.to_thread(append_events, stack, [synthetic_event(rng, 1000 + n) for n in range(5)])
            got = [await _next_changes(conn, 55) for conn in conns]
            for conn in conns:
                await conn.close()
            return got, held

        got, held = asyncio.run(run())
    finally:
        process.stop()
    assert len(held) == 2 and all(n > 0 for n in held.values()), held
    assert got == [[51, 52, 53, 54, 55]] * 24


def test_a_live_subscriber_that_stops_reading_is_closed_alone(stack: Settings, tmp_path: Path) -> None:
    """Among live subscribers of one group, one that stops reading is closed with 4008 and the cursor of the last
    change it was sent, resumes after it without a gap, and the others get every change meanwhile."""
    process = _serve(stack, tmp_path / "serve.log")
    try:
        async def run() -> tuple[list[list[int]], list[int], Any, list[int]]:
            start = json.loads(await asyncio.to_thread(_get, f"{stack.base_url}/healthz"))["head"]
            fast = await _live(_ws(stack, "?batch=5"), 3)
            raw = socket.socket()
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            raw.connect((stack.host, stack.port))
            slow = await websockets.connect(_ws(stack, "?batch=5"), sock=raw, max_size=None, max_queue=1)
            while json.loads(await asyncio.wait_for(slow.recv(), 10))["type"] != "caught_up":
                pass
            rng = random.Random(11)
            bulk = [synthetic_event(rng, 2000 + n, padding=80_000) for n in range(120)]  # ~10 MB
            for n in range(0, len(bulk), 10):
                await asyncio.to_thread(append_events, stack, bulk[n:n + 10])
            end = start + len(bulk)
            got = [await _next_changes(conn, end) for conn in fast]
            await asyncio.sleep(3)  # the slow one's send stays blocked past the 1 s send timeout
            slow_got: list[int] = []
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    message = json.loads(await asyncio.wait_for(slow.recv(), 10))
                    if message["type"] == "changes":
                        slow_got += [c["cursor"] for c in message["changes"]]
            close = closed.value.rcvd
            assert close is not None
            rest = await _next_changes(await websockets.connect(
                _ws(stack, f"?after={close.reason}&batch=50"), max_size=None), end)
            return [g[:len(bulk)] for g in got], slow_got, close, rest

        got, slow_got, close, rest = asyncio.run(run())
    finally:
        process.stop()
    expected = got[0]
    assert all(g == expected for g in got) and expected == list(range(expected[0], expected[0] + 120))
    assert close is not None and close.code == 4008
    assert int(close.reason) == (slow_got[-1] if slow_got else expected[0] - 1) < expected[-1]
    assert slow_got + rest == expected


def _get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a local test server
        return str(response.read().decode())


def test_the_asgi_path_speaks_the_same_protocol(stack: Settings, tmp_path: Path) -> None:
    """``serve --websocket asgi`` (the baseline of bench/feeds.py) backfills, says caught_up and then pushes live
    changes, like the fan-out."""
    process = _serve(stack, tmp_path / "serve.log", "--websocket", "asgi")
    try:
        async def run() -> tuple[list[str], list[int]]:
            types: list[str] = []
            async with websockets.connect(_ws(stack, "?after=45&batch=2")) as conn:
                while not types or types[-1] != "caught_up":
                    types.append(json.loads(await asyncio.wait_for(conn.recv(), 10))["type"])
                head = json.loads(await asyncio.to_thread(_get, f"{stack.base_url}/healthz"))["head"]
                await asyncio.to_thread(append_events, stack, [synthetic_event(random.Random(5), 3000)])
                live = await _next_changes(conn, head + 1)
            return types, live

        types, live = asyncio.run(run())
    finally:
        process.stop()
    assert types[0] == "subscribed" and types[-1] == "caught_up" and "changes" in types
    assert len(live) == 1


def test_other_websocket_paths_are_not_found(stack: Settings, tmp_path: Path) -> None:
    """A websocket upgrade anywhere but /ws/changes is answered 404, and plain HTTP still works on the port."""
    process = _serve(stack, tmp_path / "serve.log")
    try:
        async def run() -> int | None:
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(f"ws://{stack.host}:{stack.port}/ws/other")
            return refused.value.response.status_code

        status = asyncio.run(run())
        assert json.loads(_get(f"{stack.base_url}/healthz"))["status"] == "ok"
    finally:
        process.stop()
    assert status == 404


def test_runs_keep_every_frame_in_order_and_end_at_their_last_cursor() -> None:
    """Frames are joined into runs of about RUN bytes, in order, each run naming its last change's cursor."""
    frames = [(json.dumps({"type": "changes", "cursor": n, "pad": "x" * (n * 997 % 20_000)}), n) for n in range(1, 60)]
    runs = _runs(frames)
    joined = b"".join(data for data, _, _ in runs)
    texts = []
    while joined:  # unmasked text frames: 0x81, then the length (7 bits, 126 + 2 bytes, or 127 + 8 bytes)
        size, start = joined[1] & 0x7F, 2
        if size == 126:
            size, start = int.from_bytes(joined[2:4], "big"), 4
        elif size == 127:
            size, start = int.from_bytes(joined[2:10], "big"), 10
        assert joined[0] == 0x81
        texts.append(joined[start:start + size].decode())
        joined = joined[start + size:]
    assert texts == [text for text, _ in frames]
    assert sum(count for _, _, count in runs) == len(frames)
    assert all(len(data) < RUN + 25_000 for data, _, _ in runs)
    assert [last for _, last, _ in runs] == [json.loads(texts[sum(c for _, _, c in runs[:i + 1]) - 1])["cursor"]
                                            for i in range(len(runs))]

