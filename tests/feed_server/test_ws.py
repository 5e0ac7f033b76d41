"""The websocket feed on a real server: resume without gaps, filters, slow subscribers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import websockets
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from core.settings import Settings
from tests.support.changes import BUYERS, KINDS, SUPPLIERS, append_events, synthetic_event
from tests.support.stack import Process, base_settings, free_port, fresh_stack, wait_http

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with fresh_stack(base_settings(), port=free_port(), ws_send_timeout=1.0, ws_queue_size=200) as settings:
        rng = random.Random(7)
        append_events(settings, [synthetic_event(rng, n) for n in range(1, 601)])
        process = Process(settings, "serve", log=tmp_path_factory.mktemp("logs") / "serve.log")
        try:
            wait_http(f"{settings.base_url}/healthz")
            yield settings
        finally:
            process.stop()


def _ws(settings: Settings, query: str = "") -> str:
    return f"{settings.base_url.replace('http', 'ws', 1)}/ws/changes{query}"


async def _collect(url: str, until_cursor: int | None = None, timeout: float = 20,
                   batches: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every change received until ``caught_up`` at or past ``until_cursor`` (or the first caught_up).

    ``changes`` messages (batched subscriptions) are appended to ``batches`` when it is given.
    """
    received: list[dict[str, Any]] = []
    async with websockets.connect(url, max_size=None) as ws:
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
            if message["type"] == "change":
                received.append(message["change"])
            elif message["type"] == "changes":
                received += message["changes"]
                if batches is not None:
                    batches.append(message)
            elif message["type"] in ("caught_up", "heartbeat") and (
                until_cursor is None or message["cursor"] >= until_cursor
            ):
                return received
            elif message["type"] == "error":
                raise AssertionError(message)


def _all_events(settings: Settings) -> list[dict[str, Any]]:
    import httpx

    events: list[dict[str, Any]] = []
    after = 0
    while True:
        body = httpx.get(f"{settings.base_url}/api/changes", params={"after": after, "limit": 1000}).json()
        events += body["changes"]
        if body["next_cursor"] == after or body["next_cursor"] >= body["head"]:
            return events
        after = body["next_cursor"]


def _oracle(event: dict[str, Any], filters: dict[str, Any]) -> bool:
    """The filter semantics written out independently of core.filters."""
    summary = event["summary"]
    if "buyer" in filters and summary["buyer"]["id"] != filters["buyer"]:
        return False
    if "supplier" in filters and filters["supplier"] not in [s["id"] for s in summary["suppliers"]]:
        return False
    if "method" in filters and summary["method"] != filters["method"]:
        return False
    if "kind" in filters and event["kind"] != filters["kind"]:
        return False
    amount = summary.get("contract_amount")
    if "min_amount" in filters and (amount is None or amount < filters["min_amount"]):
        return False
    return "ocid" not in filters or event["ocid"] == filters["ocid"]


FILTERS = st.fixed_dictionaries({}, optional={
    "buyer": st.sampled_from([b[0] for b in BUYERS]),
    "supplier": st.sampled_from([s[0] for s in SUPPLIERS]),
    "method": st.sampled_from(["open", "limited", "direct"]),
    "kind": st.sampled_from(KINDS),
    "min_amount": st.sampled_from([0.0, 50_000.0, 1_000_000.0]),
    "ocid": st.sampled_from([f"ocds-07smqs-{i}" for i in (1, 7, 33)]),
})


@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(filters=FILTERS)
def test_each_filter_delivers_exactly_the_matching_changes(server: Settings, filters: dict[str, Any]) -> None:
    """A filtered subscription from the start delivers exactly the log's matching changes, in order."""
    log = [e for e in _all_events(server) if e["cursor"] <= 600]
    query = "?" + "&".join(f"{k}={v}" for k, v in {"after": 0, **filters}.items())
    received = asyncio.run(_collect(_ws(server, query), until_cursor=600))
    got = [e["cursor"] for e in received if e["cursor"] <= 600]
    assert got == [e["cursor"] for e in log if _oracle(e, filters)]


def test_unknown_cursor_is_an_explicit_error(server: Settings) -> None:
    """A cursor beyond the log's head is answered with an error naming the range, then close 4004."""

    async def run() -> tuple[dict[str, Any], int | None]:
        async with websockets.connect(_ws(server, "?after=99999999")) as ws:
            message = json.loads(await ws.recv())
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return message, ws.close_code

    message, code = asyncio.run(run())
    assert message["code"] == "unknown-cursor"
    assert code == 4004


def test_silent_subscriber_is_closed_and_delays_nobody(server: Settings) -> None:
    """A client that never reads is closed with 4008 while another subscriber keeps getting changes quickly."""
    host, port = server.host, server.port
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect((host, port))
    raw.sendall(
        f"GET /ws/changes?after=0&detail=full HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    rng = random.Random(5)

    async def healthy() -> list[float]:
        arrived: dict[str, float] = {}
        async with websockets.connect(_ws(server), max_size=None) as ws:

            async def read() -> None:
                async for text in ws:
                    message = json.loads(text)
                    if message["type"] == "change":
                        arrived[message["change"]["id"]] = time.monotonic()

            reader = asyncio.create_task(read())
            # ~12 MB the silent client will never read: its socket buffers fill and its sends block
            bulk = [synthetic_event(rng, 40_000 + n, padding=80_000) for n in range(150)]
            await asyncio.to_thread(append_events, server, bulk)
            sent: dict[str, float] = {}
            for n in range(20):
                event = synthetic_event(rng, 50_000 + n)
                sent[event["id"]] = time.monotonic()
                await asyncio.to_thread(append_events, server, [event])
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            reader.cancel()
        return [arrived[i] - t if i in arrived else float("inf") for i, t in sent.items()]

    try:
        latencies = asyncio.run(healthy())
        assert max(latencies) < 1.0
        import httpx

        deadline = time.monotonic() + 20
        closed = 0.0
        while time.monotonic() < deadline and closed < 1:
            metrics = httpx.get(f"{server.base_url}/metrics").text
            closed = float(next(line.split()[1] for line in metrics.splitlines()
                                if line.startswith("ocds_ws_slow_closed_total")))
            time.sleep(0.5)
        assert closed >= 1, "the silent subscriber was not closed"
    finally:
        raw.close()


def test_resume_from_random_cursors_while_two_writers_commit(server: Settings) -> None:
    """Subscribers that disconnect at random cursors and resume get every change once, in order."""
    rng = random.Random(11)
    stop = threading.Event()

    def writer(seed: int) -> None:
        local = random.Random(seed)
        n = 10_000 * seed
        while not stop.is_set() and n < 10_000 * seed + 1200:
            batch = [synthetic_event(local, n + i) for i in range(local.randint(1, 20))]
            n += len(batch)
            append_events(server, batch)
            time.sleep(local.random() * 0.02)

    writers = [threading.Thread(target=writer, args=(s,)) for s in (1, 2)]
    for thread in writers:
        thread.start()

    async def subscriber() -> list[int]:
        cursors: list[int] = []
        position = 0
        while position < 2000:  # well past the 600 changes present at the start: resumes happen live too
            # max_queue=None: a client that stops reading with a full queue cannot finish the closing
            # handshake until its close_timeout (10 s) while the server still has changes in flight
            async with websockets.connect(_ws(server, f"?after={position}"), max_size=None, max_queue=None) as ws:
                try:
                    for _ in range(rng.randint(20, 300)):
                        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                        if message["type"] == "change":
                            cursors.append(message["cursor"])
                            position = message["cursor"]
                except websockets.ConnectionClosed as closed:
                    # too slow (4008) under load: the protocol says resume from the last cursor processed
                    assert closed.rcvd is not None and closed.rcvd.code == 4008, closed
        return cursors

    async def run() -> list[list[int]]:
        return list(await asyncio.gather(*(subscriber() for _ in range(4))))

    try:
        results = asyncio.run(run())
    finally:
        stop.set()
        for thread in writers:
            thread.join()
    for cursors in results:
        assert cursors == list(range(1, len(cursors) + 1)), "a gap or a repeat in a resumed subscription"


def _head(settings: Settings) -> int:
    """The newest cursor in the store (the server may not have read it yet)."""
    import psycopg2

    conn = psycopg2.connect(settings.database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(max(cursor), 0) FROM changes")
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


@pytest.mark.parametrize(("filters", "batch"), [
    ({}, 1), ({}, 500), ({"method": "open"}, 7), ({"kind": "contract.", "min_amount": 50_000}, 3),
    ({"buyer": "MX-UC-0002", "supplier": "MX-RFC-BBB020202BB2"}, 100),
    ({"ocid_prefix": "ocds-07smqs-1", "detail": "full"}, 4),
])
def test_batched_subscriber_gets_exactly_the_changes_of_an_unbatched_one(
    server: Settings, filters: dict[str, Any], batch: int
) -> None:
    """With the same filter and detail, ``batch`` changes how changes are framed, never which ones arrive or
    their order."""
    query = "?" + urlencode({"after": 0, **filters})
    plain = asyncio.run(_collect(_ws(server, query), until_cursor=600))
    batched = asyncio.run(_collect(_ws(server, f"{query}&batch={batch}"), until_cursor=600))
    assert [e for e in plain if e["cursor"] <= 600]
    assert [e for e in batched if e["cursor"] <= 600] == [e for e in plain if e["cursor"] <= 600]


def test_a_batch_never_exceeds_its_bound(server: Settings) -> None:
    """Every ``changes`` message holds 1..batch changes, and its cursor is the cursor of its last change."""
    batches: list[dict[str, Any]] = []
    received = asyncio.run(_collect(_ws(server, "?after=0&batch=7"), until_cursor=600, batches=batches))
    assert [e["cursor"] for e in received][:600] == list(range(1, 601))
    assert all(1 <= len(b["changes"]) <= 7 for b in batches)
    assert max(len(b["changes"]) for b in batches) == 7  # the backfill fills messages up to the bound
    assert all(b["cursor"] == b["changes"][-1]["cursor"] for b in batches)


def test_batched_subscriber_resuming_while_changes_arrive_gets_what_an_unbatched_one_gets(server: Settings) -> None:
    """A batched subscriber that keeps resuming with ``after`` (reconnecting, or with a subscribe message)
    while a writer commits gets exactly the changes, in order, of an unbatched subscriber with its filter."""
    filters = {"kind": "contract.", "method": "open"}
    start = _head(server)
    rng = random.Random(23)
    sentinel = "evt-batch-sentinel"  # the last change written; it matches the filter

    def writer() -> None:
        local = random.Random(3)
        for n in range(60):
            append_events(server, [synthetic_event(local, 70_000 + 20 * n + i) for i in range(local.randint(1, 20))])
            time.sleep(local.random() * 0.03)
        last = synthetic_event(local, 79_999)
        last.update(id=sentinel, kind="contract.signed", kinds=["contract.signed"])
        last["summary"]["method"] = "open"
        append_events(server, [last])

    async def receive(ws: Any) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 20))
        assert message["type"] != "error", message
        return message

    async def plain() -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        while True:
            after = got[-1]["cursor"] if got else start
            async with websockets.connect(_ws(server, "?" + urlencode({"after": after, **filters})), max_size=None,
                                          max_queue=None) as ws:
                with contextlib.suppress(websockets.ConnectionClosedError):  # 4008 under load: resume
                    while True:
                        message = await receive(ws)
                        if message["type"] == "change":
                            got.append(message["change"])
                            if got[-1]["id"] == sentinel:
                                return got

    async def batched() -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        while True:
            bound = rng.choice([1, 4, 50])
            after = got[-1]["cursor"] if got else start
            url = _ws(server, "?" + urlencode({"after": after, "batch": bound, **filters}))
            async with websockets.connect(url, max_size=None, max_queue=None) as ws:
                with contextlib.suppress(websockets.ConnectionClosedError):
                    for _ in range(rng.randint(1, 3)):  # subscriptions on this connection
                        for _ in range(rng.randint(2, 8)):
                            message = await receive(ws)
                            assert message["type"] != "change", "a batched subscription got a change message"
                            if message["type"] == "changes":
                                assert 1 <= len(message["changes"]) <= bound
                                assert message["cursor"] == message["changes"][-1]["cursor"]
                                got += message["changes"]
                                if got[-1]["id"] == sentinel:
                                    return got
                        bound = rng.choice([1, 4, 50])
                        after = got[-1]["cursor"] if got else start
                        await ws.send(json.dumps({"type": "subscribe", "after": after, "batch": bound,
                                                  "filters": filters}))
                        while (await receive(ws))["type"] != "subscribed":
                            pass  # what the previous subscription had already sent

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        thread = threading.Thread(target=writer)
        both = asyncio.gather(plain(), batched())
        await asyncio.sleep(0.2)
        thread.start()
        try:
            got_plain, got_batched = await asyncio.wait_for(both, 120)
        finally:
            await asyncio.to_thread(thread.join)
        return got_plain, got_batched

    got_plain, got_batched = asyncio.run(run())
    end = got_plain[-1]["cursor"]
    log = [e for e in _all_events(server) if start < e["cursor"] <= end]
    assert [e["cursor"] for e in got_plain] == [
        e["cursor"] for e in log if e["kind"].startswith("contract.") and e["summary"]["method"] == "open"
    ]
    assert got_batched == got_plain


def test_slow_batched_subscriber_is_closed_with_its_last_cursor(server: Settings) -> None:
    """A batched subscriber that stops reading is closed (4008) with the cursor of the last batch it was sent,
    and resuming after that cursor continues without a gap or a repeat."""
    start = _head(server)
    rng = random.Random(29)
    append_events(server, [synthetic_event(rng, 90_000 + n, padding=80_000) for n in range(200)])  # ~16 MB
    end = _head(server)

    async def stall() -> tuple[list[dict[str, Any]], Any]:
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect((server.host, server.port))
        got: list[dict[str, Any]] = []
        async with websockets.connect(_ws(server, f"?after={start}&batch=10"), sock=raw, max_size=None,
                                      max_queue=1) as ws:
            await asyncio.sleep(4)  # reads nothing: the server's sends block, it gives up after 1 s
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 20))
                    if message["type"] == "changes":
                        got += message["changes"]
        return got, closed.value.rcvd

    got, close = asyncio.run(stall())
    assert close is not None and close.code == 4008
    assert got and int(close.reason) == got[-1]["cursor"] < end
    rest = asyncio.run(_collect(_ws(server, f"?after={close.reason}&batch=10"), until_cursor=end))
    assert [e["cursor"] for e in got + rest if e["cursor"] <= end] == list(range(start + 1, end + 1))


async def _refusals(server: Settings, query: str, bad: dict[str, Any],
                    good: dict[str, Any]) -> tuple[dict[str, Any], int | None, dict[str, Any], dict[str, Any]]:
    """The error and close code for connecting with ``query``; then, on a fresh connection, the error for
    the subscribe message ``bad`` and the ``subscribed`` answering ``good`` sent after it on the same one."""
    async with websockets.connect(_ws(server, query)) as ws:
        refused = json.loads(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        code = ws.close_code
    async with websockets.connect(_ws(server)) as ws:
        json.loads(await ws.recv())  # subscribed
        await ws.send(json.dumps({"type": "subscribe", **bad}))
        message = json.loads(await ws.recv())
        while message["type"] != "error":
            message = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "subscribe", **good}))  # the connection is still open
        again = json.loads(await ws.recv())
        while again["type"] != "subscribed":
            again = json.loads(await ws.recv())
    return refused, code, message, again


def test_batch_outside_its_bounds_is_refused(server: Settings) -> None:
    """``batch`` above 500 in the query is a bad request (4400); ``true`` in a subscribe message is a bad message."""
    refused, code, bad, again = asyncio.run(_refusals(server, "?batch=501", {"batch": True}, {"batch": 20}))
    assert refused["code"] == "bad-request" and "batch" in refused["message"] and code == 4400
    assert bad["code"] == "bad-message" and "batch" in bad["message"]
    assert again["batch"] == 20


def _without_values(event: dict[str, Any]) -> dict[str, Any]:
    """What a brief subscriber should get for a summary event: the changed fields' paths and ops only."""
    return {**event, "changes": [{"path": c["path"], "op": c["op"]} for c in event["changes"]]}


@pytest.mark.parametrize(("filters", "batch"), [
    ({}, 0), ({}, 100), ({"method": "open"}, 0), ({"method": "open"}, 7),
    ({"kind": "contract.", "min_amount": 50_000}, 0), ({"buyer": "MX-UC-0002"}, 3),
])
def test_brief_subscriber_gets_the_changes_of_a_summary_one_without_values(
    server: Settings, filters: dict[str, Any], batch: int
) -> None:
    """From the backfill, ``detail=brief`` delivers the same changes as ``detail=summary`` with the same filter
    and framing (cursors, kinds, summary, every other field, each change's path and op), without old/new."""
    query = urlencode({"after": 0, **filters, **({"batch": batch} if batch else {})})
    summary = asyncio.run(_collect(_ws(server, f"?{query}&detail=summary"), until_cursor=600))
    brief = asyncio.run(_collect(_ws(server, f"?{query}&detail=brief"), until_cursor=600))
    summary = [e for e in summary if e["cursor"] <= 600]
    brief = [e for e in brief if e["cursor"] <= 600]
    assert summary and all("old" in c and "new" in c for e in summary for c in e["changes"])
    assert all(set(c) == {"path", "op"} for e in brief for c in e["changes"])
    assert brief == [_without_values(e) for e in summary]


def test_brief_subscribers_live_get_the_changes_of_a_summary_one_without_values(server: Settings) -> None:
    """Live, batched and unbatched brief subscribers (one resuming mid-way with ``after``) get the same changes,
    in order, as a summary subscriber, each change with its paths and ops (add, remove, replace) but no values."""
    start = _head(server)
    rng = random.Random(31)
    sentinel = "evt-brief-sentinel"
    events = []
    for n in range(120):
        event = synthetic_event(rng, 110_000 + n)
        event["changes"] = [
            {"path": "/tender/value/amount", "op": "replace", "old": n, "new": n + 1.5},
            {"path": f"/awards/{n}", "op": "add", "old": None, "new": {"id": f"a-{n}", "title": "Obra pública"}},
            {"path": "/tender/description", "op": "remove", "old": "ñandú " * 20, "new": None},
        ][: 1 + n % 3]
        events.append(event)
    events[-1]["id"] = sentinel

    async def subscribe(detail: str, batch: int, resume_after: int = 0) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        after = start
        while True:
            query = urlencode({"after": after, "detail": detail, **({"batch": batch} if batch else {})})
            async with websockets.connect(_ws(server, f"?{query}"), max_size=None, max_queue=None) as ws:
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 20))
                    assert message["type"] != "error", message
                    new = ([message["change"]] if message["type"] == "change"
                           else message["changes"] if message["type"] == "changes" else [])
                    got += new
                    if got and got[-1]["id"] == sentinel:
                        return got
                    if new and resume_after and len(got) >= resume_after:
                        resume_after, after = 0, got[-1]["cursor"]  # disconnect, then resume after it
                        break

    async def run() -> list[list[dict[str, Any]]]:
        both = asyncio.gather(subscribe("summary", 0), subscribe("brief", 0, resume_after=40),
                              subscribe("brief", 10), subscribe("brief", 50, resume_after=25))
        await asyncio.sleep(0.5)  # all connected and caught up: what follows is live
        for chunk in range(0, len(events), 15):
            await asyncio.to_thread(append_events, server, events[chunk:chunk + 15])
            await asyncio.sleep(0.05)
        return list(await asyncio.wait_for(both, 60))

    summary, *briefs = asyncio.run(run())
    assert [e["id"] for e in summary] == [e["id"] for e in events]
    assert {c["op"] for e in summary for c in e["changes"]} == {"add", "remove", "replace"}
    assert summary[-1]["changes"][-1]["old"] == "ñandú " * 20
    for brief in briefs:
        assert brief == [_without_values(e) for e in summary]


def test_unknown_detail_is_refused(server: Settings) -> None:
    """A ``detail`` other than summary, brief or full is a bad request (4400) in the query, and a bad message
    in a subscribe message, after which the connection stays open."""
    refused, code, bad, again = asyncio.run(_refusals(server, "?detail=tiny", {"detail": "Brief"}, {"detail": "brief"}))
    assert refused["code"] == "bad-request" and "detail" in refused["message"] and code == 4400
    assert bad["code"] == "bad-message" and "detail" in bad["message"]
    assert again["detail"] == "brief"
