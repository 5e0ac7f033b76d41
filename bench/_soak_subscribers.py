"""The soak's subscribers: websocket and pull (``GET /api/changes``) clients that resume from their own cursor
on any feed server.

A websocket subscriber connects to a random feed server with ``after=<its cursor>``, and after a disconnection
(its server killed, or a hop it makes by itself every 20-90 s) connects again to a random one, so it resumes
on the other server about half the time. A pull subscriber asks a random server for each page. Every
subscriber records exactly what it received, unfiltered by itself: each change's cursor and a digest of its
(ocid, release id, kind), so the end of the soak can count what was lost, repeated or out of order against
the store's change log. Refusals (``error`` messages, HTTP 4xx) are recorded too.
"""

from __future__ import annotations

import asyncio
import http.client
import random
import time
import urllib.error
import urllib.request
import zlib
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

HOP = (20.0, 90.0)  # seconds a websocket subscriber stays on one connection before it hops, at random


def identity(ocid: str, release_id: str, kind: str) -> int:
    """A digest of what a change is about, to check that a cursor carries the store's change."""
    return zlib.crc32(f"{ocid}\x00{release_id}\x00{kind}".encode())


@dataclass
class Spec:
    """One subscriber's subscription: filters, detail, batch framing, transport, when it starts."""

    name: str
    filters: dict[str, str]
    detail: str = "summary"
    batch: int = 0
    transport: str = "ws"  # or "http"
    delay: float = 0.0  # seconds after the start of the stream; a late subscriber starts at ``after=now``

    def describe(self) -> str:
        framing = f"batch={self.batch}" if self.batch else "single"
        what = ",".join(f"{k}={v}" for k, v in self.filters.items()) or "everything"
        return f"{self.transport} {self.detail} {framing} {what}"[:60]


@dataclass
class Subscriber:
    spec: Spec
    start: int | None = None  # the cursor after which it asked for changes
    cursors: array[int] = field(default_factory=lambda: array("q"))
    digests: array[int] = field(default_factory=lambda: array("L"))
    examined: int = 0  # everything up to here was examined for it (caught_up, heartbeat, next_cursor)
    connections: int = 0
    servers: set[str] = field(default_factory=set)
    resumed_elsewhere: int = 0  # connections to another server than the previous one
    refusals: list[str] = field(default_factory=list)
    cut_short: list[str] = field(default_factory=list)  # pull answers whose body ended early (reported, retried)
    down_since: float | None = None  # when its last connection ended (None: connected and caught up)
    server: str = ""  # the feed server of its current (or last) connection
    last_ok: float = 0.0  # when it last caught up (websocket) or got a page (pull)
    done: bool = False

    @property
    def cursor(self) -> int | str:
        """Where to resume: after the last change received (a pull subscriber: after the last one examined)."""
        if self.spec.transport == "http":
            return self.examined
        if self.cursors:
            return int(self.cursors[-1])
        return self.start if self.start is not None else "now"

    def take(self, changes: Sequence[dict[str, Any]]) -> None:
        for change in changes:
            self.cursors.append(int(change["cursor"]))
            self.digests.append(identity(change["ocid"], change["release_id"], change["kind"]))


class Subscribers:
    """Runs every subscriber against ``servers()`` (the feed servers' base URLs) until :meth:`finish`."""

    def __init__(self, specs: Sequence[Spec], servers: Callable[[], list[str]], seed: int) -> None:
        self.subs = [Subscriber(spec) for spec in specs]
        self.servers = servers
        self.rng = random.Random(seed)
        self.final: int | None = None  # once set: examine up to this cursor, then stop
        self.started = time.monotonic()

    def finish(self, head: int) -> None:
        self.final = head

    def all_done(self) -> bool:
        return all(s.done for s in self.subs)

    def down(self) -> list[Subscriber]:
        return [s for s in self.subs if s.down_since is not None and not s.done]

    async def run(self) -> None:
        await asyncio.gather(*(self._one(sub) for sub in self.subs))

    async def _one(self, sub: Subscriber) -> None:
        await asyncio.sleep(max(0.0, sub.spec.delay - (time.monotonic() - self.started)))
        if sub.spec.delay == 0:
            sub.start = 0
        previous = None
        while not sub.done:
            server = self.rng.choice(self.servers())
            if previous is not None and server != previous:
                sub.resumed_elsewhere += 1
            previous = server
            sub.servers.add(server)
            sub.server = server
            if sub.spec.transport == "ws":
                await self._websocket(sub, server)
            else:
                await self._poll(sub, server)
            if self.final is not None and sub.examined >= self.final:
                sub.done = True
                sub.down_since = None
            elif sub.spec.transport == "ws":
                await asyncio.sleep(self.rng.uniform(0.05, 0.5))

    def _query(self, sub: Subscriber, **extra: Any) -> str:
        params: dict[str, Any] = {**sub.spec.filters, "after": sub.cursor, "detail": sub.spec.detail, **extra}
        if sub.spec.batch:
            params["batch"] = sub.spec.batch
        return urlencode(params)

    async def _websocket(self, sub: Subscriber, server: str) -> None:
        url = f"ws{server[4:]}/ws/changes?{self._query(sub)}"
        hop_at = time.monotonic() + self.rng.uniform(*HOP)
        final = self.final
        try:
            async with connect(url, max_size=None, compression=None, open_timeout=5, close_timeout=2) as ws:
                sub.connections += 1
                async for text in ws:
                    message = orjson.loads(text)
                    kind = message.get("type")
                    if kind == "change":
                        sub.take([message["change"]])
                        sub.examined = max(sub.examined, int(message["cursor"]))
                    elif kind == "changes":
                        sub.take(message["changes"])
                        sub.examined = max(sub.examined, int(message["cursor"]))
                    elif kind == "subscribed":
                        if sub.start is None:
                            sub.start = int(message["cursor"])
                    elif kind in ("caught_up", "heartbeat"):
                        sub.examined = max(sub.examined, int(message["cursor"]))
                        if kind == "caught_up":
                            sub.down_since, sub.last_ok = None, time.monotonic()
                    elif kind == "error":
                        # "try again" errors (docs/websocket.md): too slow, or the store away or switching (1013)
                        if message.get("code") not in ("too-slow", "store-unavailable", "store-switching"):
                            sub.refusals.append(f"{server}: {message.get('code')}: {message.get('message')}")
                        return
                    if self.final is not None and (final is None or sub.examined >= self.final):
                        return  # the end: one last connection, caught up to the final head
                    if time.monotonic() > hop_at:
                        return
        except (TimeoutError, ConnectionClosed, OSError, InvalidHandshake):
            pass
        finally:
            if sub.down_since is None:
                sub.down_since = time.monotonic()

    async def _poll(self, sub: Subscriber, server: str) -> None:
        url = f"{server}/api/changes?{self._query(sub, limit=200)}"
        try:
            status, body = await asyncio.to_thread(_get, url)
        except http.client.IncompleteRead as exc:
            # the connection ended inside the body: the page is not taken, and asked for again (reported)
            sub.cut_short.append(f"{server} at {time.monotonic():.0f}: {exc!r}")
            await asyncio.sleep(0.2)
            return
        except (OSError, http.client.HTTPException):
            if sub.down_since is None:
                sub.down_since = time.monotonic()
            await asyncio.sleep(0.2)
            return
        if status != 200:
            if status < 500:
                sub.refusals.append(f"{server}: HTTP {status}: {body[:200]!r}")
            await asyncio.sleep(0.5)
            return
        page = orjson.loads(body)
        sub.connections += 1
        sub.take(page["changes"])
        sub.examined = max(sub.examined, int(page["next_cursor"]))
        sub.down_since, sub.last_ok = None, time.monotonic()
        if int(page["next_cursor"]) >= int(page["head"]):
            await asyncio.sleep(0.3)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - the soak's own servers
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def plan(count: int, pollers: int, sample: Sequence[dict[str, Any]], duration: float, seed: int) -> list[Spec]:
    """``count`` websocket subscribers and ``pollers`` pull subscribers with mixed filters, details and
    framings, their filter values taken from ``sample`` (releases of the stream to come)."""
    rng = random.Random(seed)
    buyers = sorted({r["buyer"]["id"] for r in sample if isinstance(r.get("buyer"), dict) and "id" in r["buyer"]})
    ocids = sorted({r["ocid"] for r in sample})
    projects = sorted({p for r in sample if (p := ((r.get("planning") or {}).get("budget") or {}).get("projectID"))})
    filters: list[dict[str, str]] = [
        {}, {"buyer": rng.choice(buyers)}, {"ocid": rng.choice(ocids)}, {"kind": "contract."},
        {"method": rng.choice(["open", "selective", "limited", "direct"])},
        {"category": rng.choice(["goods", "services", "works"])}, {"ocid_prefix": "ocds-07smqs"},
        {"kind": "tender.published"}, {"min_amount": "1000000", "currency": "MXN"}, {"q": "servicio"},
        {"project": rng.choice(projects)} if projects else {"kind": "award."},
        {"buyer": rng.choice(buyers), "kind": "award."},
    ]
    specs = []
    for n in range(count + pollers):
        chosen = dict(filters[n % len(filters)])
        if "buyer" in chosen:
            chosen["buyer"] = rng.choice(buyers)
        if "ocid" in chosen:
            chosen["ocid"] = rng.choice(ocids)
        narrow = bool({"ocid", "buyer", "project"} & set(chosen))
        transport = "ws" if n < count else "http"
        detail = rng.choice(["summary", "brief", "full"] if narrow else ["summary", "brief"])
        batch = rng.choice([0, 0, 10, 100, 500])
        if transport == "http":  # the pull API has neither (pages of summary events)
            detail, batch = "summary", 0
        late = transport == "ws" and rng.random() < 0.3
        specs.append(Spec(f"{transport}-{n:02d}", chosen, detail, batch, transport,
                          rng.uniform(0.05, 0.3) * duration if late else 0.0))
    return specs
