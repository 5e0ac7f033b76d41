"""The floor for bench/feeds.py: a bare ``websockets.broadcast`` loop sending the feed server's own frames.

A child process of the benchmark runs a plain ``websockets`` server (no compression, pings every 20 s
like the feed server). Each connection is put in the group of its query's (filter, detail, batch) and
answered ``subscribed``. Given the steps of a measured feed-server run (the cursors that became visible
together, and when), it encodes every group's messages for every step **before** the clock starts, with
the feed server's own encoder (``feed_server.hub.ChangeHub.messages``), then replays them at the same
pace: for each step, for each group, ``broadcast(members, message)`` for each message. It reports its
own CPU seconds (``time.process_time``) over the replay, so the benchmark can divide them by the
messages the subscribers received.
"""

from __future__ import annotations

import asyncio
import time
from multiprocessing.connection import Connection
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import orjson
import psycopg2

from core.filters import ChangeFilter
from feed_server.hub import ChangeHub

GroupKey = tuple[ChangeFilter, str, int]


def _key(path: str) -> GroupKey:
    params = dict(parse_qsl(urlsplit(path).query, keep_blank_values=True))
    detail = params.pop("detail", "summary")
    batch = int(params.pop("batch", "0") or 0)
    params.pop("after", None)
    return ChangeFilter.from_mapping(params), detail, batch


def _events(dsn: str, low: int, high: int) -> list[dict[str, Any]]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT event::text FROM changes WHERE cursor > %s AND cursor <= %s ORDER BY cursor",
                        (low, high))
            return [orjson.loads(row[0]) for row in cur.fetchall()]
    finally:
        conn.close()


async def _serve(pipe: Connection, port: int, dsn: str) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    groups: dict[GroupKey, set[ServerConnection]] = {}

    async def handler(ws: ServerConnection) -> None:
        key = _key(ws.request.path if ws.request else "")
        groups.setdefault(key, set()).add(ws)
        try:
            await ws.send('{"type":"subscribed"}')
            await ws.wait_closed()
        finally:
            groups[key].discard(ws)

    loop = asyncio.get_running_loop()
    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=20, ping_timeout=20,
                     max_queue=16, write_limit=2**16, backlog=4096):
        pipe.send({"listening": port})
        while True:
            command, arg = await loop.run_in_executor(None, pipe.recv)
            if command == "close":
                pipe.send({})
                return
            # replay: arg = [(seconds after the first step, [cursor, ...]), ...]
            steps: list[tuple[float, list[int]]] = arg
            cursors = [c for _, step in steps for c in step]
            events = {e["cursor"]: e for e in _events(dsn, min(cursors) - 1, max(cursors))}
            hub = ChangeHub(cast(Any, None), cast(Any, None), ring_size=len(events) + 1)
            plan: list[tuple[float, list[tuple[set[ServerConnection], list[str]]]]] = []
            for at, step in steps:
                page = [events[c] for c in step if c in events]
                if not page:
                    continue
                hub.append(page)
                sends = [(members, [text for text, _ in hub.messages(f, page, batch, detail)])
                         for (f, detail, batch), members in groups.items()]
                plan.append((at, [(m, texts) for m, texts in sends if texts and m]))
            messages = 0
            start_cpu, start = time.process_time(), loop.time()
            for at, sends in plan:
                delay = start + at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                for members, texts in sends:
                    for text in texts:
                        broadcast(members, text)
                        messages += len(members)
            await asyncio.sleep(2.0)  # the last writes leave the buffers (their CPU counts too)
            pipe.send({"cpu": time.process_time() - start_cpu, "wall": loop.time() - start, "sent": messages})


def bare_process(pipe: Connection, port: int, dsn: str) -> None:
    """Entry point of the bare broadcast server's process."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_serve(pipe, port, dsn))
