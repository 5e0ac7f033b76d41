"""The subscribers of bench/feeds.py: websocket clients cheap enough not to be what the benchmark measures.

Each subscriber process runs one asyncio loop of :class:`FeedClient` protocols, driven by commands from
the benchmark over a pipe. A client is a minimal RFC 6455 client written for the benchmark, not a
library's: it sends the opening handshake, reads the server's unmasked frames straight out of the
receive buffer, answers pings and closes, and for each ``change`` / ``changes`` message only finds the
release ids (``bytes.find``, no JSON parsing, no copy of the message) and notes them with the receipt
time (one clock reading per read from the socket). A ``websockets`` client cost ~68 us of CPU per
message of ~11 changes, most of it parsing frames in Python, a regular expression over each ~27 KB
message and a tuple per change; this one cost 14-32 us per message at 20 releases/s (bench/feeds.py
prints the subscriber processes' CPU per message in its ``clients us/msg`` column).

Connections come from 127.0.0.1-127.0.0.16 in turn, so that tens of thousands of them never run short
of ephemeral ports towards one server port.
"""

from __future__ import annotations

import array
import asyncio
import base64
import os
import resource
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson

RELEASE_ID = b'"release_id":"'  # a change event's own key (OCDS has no "release_id" field)
OCID = b'"ocid":"'  # the key before it in every change event
PROJECT = b"oc4ids-"  # a project.updated event's ocid (a project id) starts with an OC4IDS prefix
SOURCES = 16  # client addresses 127.0.0.1 .. 127.0.0.SOURCES
CLOSE_NORMAL = b"\x88\x82\0\0\0\0\x03\xe8"  # a client's close frame, code 1000 (masked with a zero key)


class Subscribers:
    """The websocket clients of one subscriber process and what they received while recording."""

    def __init__(self) -> None:
        self.url = ""
        self.clients: list[FeedClient] = []
        self.ids: list[bytes] = []  # release ids received while recording ...
        self.times = array.array("d")  # ... and when
        self.messages = 0  # change or changes messages received while recording
        self.projects = 0  # project.updated events received while recording (counted, not timed)
        self.bytes: Counter[str] = Counter()  # detail -> bytes of change / changes messages received
        self.deliveries: Counter[str] = Counter()  # detail -> changes received
        self.recording = False
        self.closes: Counter[str] = Counter()
        self.connected = 0
        self.opened = 0  # connections ever opened (for the source address of the next one)

    def reset(self) -> None:
        self.ids.clear()
        del self.times[:]
        self.closes.clear()
        self.messages = 0
        self.projects = 0
        self.bytes.clear()
        self.deliveries.clear()

    async def connect(self, queries: list[str], parallel: int = 100) -> int:
        """Open one connection per query (at most ``parallel`` handshakes at once); how many failed."""
        loop = asyncio.get_running_loop()
        url = urlsplit(self.url)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        failed = 0
        for start in range(0, len(queries), parallel):
            readies = []
            for query in queries[start:start + parallel]:
                ready: asyncio.Future[bool] = loop.create_future()
                detail = parse_qs(query).get("detail", ["summary"])[0]
                client = FeedClient(self, f"{url.path}?{query}", f"{host}:{port}", detail, ready)
                source = f"127.0.0.{1 + self.opened % SOURCES}" if host == "127.0.0.1" else None
                self.opened += 1
                try:
                    await loop.create_connection(lambda c=client: c, host, port,
                                                 local_addr=(source, 0) if source else None)
                except OSError as exc:
                    self.closes[type(exc).__name__] += 1
                    ready.set_result(False)
                self.clients.append(client)
                readies.append(ready)
            failed += sum(not ok for ok in await asyncio.gather(*readies))
        self.connected += len(queries) - failed
        return failed

    async def close(self) -> None:
        """Close every connection (code 1000) and forget them."""
        for client in self.clients:
            client.close()
        self.clients.clear()
        self.connected = 0
        await asyncio.sleep(0.5)  # the close frames leave


class FeedClient(asyncio.Protocol):
    """One subscriber's connection: the opening handshake, then frames read in place from the buffer."""

    def __init__(self, subs: Subscribers, target: str, host: str, detail: str, ready: asyncio.Future[bool]) -> None:
        self.subs = subs
        self.target = target
        self.host = host
        self.detail = detail
        self.ready = ready
        self.buffer = bytearray()
        self.open = False
        self.closing = False  # this side closed: what follows is not counted
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - a TCP connection
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(f"GET {self.target} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                        .encode())

    def close(self) -> None:
        self.closing = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(CLOSE_NORMAL)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            self.subs.closes["closed 1006" if exc or not self.open else "closed"] += 1
        if not self.ready.done():
            self.ready.set_result(False)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.subs.closes[f"handshake {bytes(buffer[9:12]).decode(errors='replace')}"] += 1
                self.closing = True
                assert self.transport is not None  # noqa: S101 - connected
                self.transport.close()
                return
            del buffer[:end + 4]
            self.open = True
        now = time.time()
        position, size = 0, len(buffer)
        while size - position >= 2:
            length, head = buffer[position + 1] & 0x7F, 2
            if length == 126:
                length, head = int.from_bytes(buffer[position + 2:position + 4], "big"), 4
            elif length == 127:
                length, head = int.from_bytes(buffer[position + 2:position + 10], "big"), 10
            start = position + head
            if size < start + length:
                break
            opcode = buffer[position] & 0x0F
            position = start + length
            if opcode == 1:
                self._text(buffer, start, position, now)
            elif opcode == 9:  # ping: pong with the same payload, masked (with a zero key)
                self._send(0xA, bytes(buffer[start:position]))
            elif opcode == 8:
                code = int.from_bytes(buffer[start:start + 2], "big") if length >= 2 else 1005
                self.subs.closes[f"closed {code}"] += 1
                self.closing = True
                self._send(0x8, bytes(buffer[start:start + 2]))
                assert self.transport is not None  # noqa: S101 - connected
                self.transport.close()
                break
            elif opcode != 0xA:
                self.subs.closes[f"opcode {opcode}"] += 1
        if position:
            del buffer[:position]

    def _send(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None and len(payload) < 126  # noqa: S101 - control frames are short
        self.transport.write(bytes((0x80 | opcode, 0x80 | len(payload))) + b"\0\0\0\0" + payload)

    def _text(self, buffer: bytearray, start: int, end: int, now: float) -> None:
        subs = self.subs
        if buffer.startswith(b'{"type":"change', start, end):
            if not subs.recording:
                return
            subs.messages += 1
            found = timed = 0
            at = buffer.find(RELEASE_ID, start, end)
            while at >= 0:
                ocid = buffer.rfind(OCID, max(start, at - 256), at)
                at += len(RELEASE_ID)
                close = buffer.find(b'"', at, end)
                found += 1
                if ocid >= 0 and buffer.startswith(PROJECT, ocid + len(OCID)):
                    # a project.updated event names the release that last changed the project: it comes a
                    # builder's round after the release (by design, docs/projects.md), so it is counted, not timed
                    subs.projects += 1
                else:
                    subs.ids.append(bytes(buffer[at:close]))
                    timed += 1
                at = buffer.find(RELEASE_ID, close, end)
            subs.times.extend([now] * timed)
            subs.bytes[self.detail] += end - start
            subs.deliveries[self.detail] += found
        elif not self.ready.done() and buffer.startswith((b'{"type":"subscribed"', b'{"type":"caught_up"'), start, end):
            self.ready.set_result(True)
        elif subs.recording and buffer.startswith(b'{"type":"error"', start, end):
            subs.closes[f"error {orjson.loads(bytes(buffer[start:end])).get('code')}"] += 1


async def _loop(pipe: Connection) -> None:
    subs = Subscribers()
    loop = asyncio.get_running_loop()
    while True:
        command, arg = await loop.run_in_executor(None, pipe.recv)
        if command == "connect":
            subs.url, queries = arg
            failed = await subs.connect(queries)
            pipe.send({"failed": failed, "connected": subs.connected})
        elif command == "start":
            subs.reset()
            subs.recording = True
            pipe.send({})
        elif command == "stop":
            subs.recording = False
            pipe.send(_timings(subs, arg))
        elif command in ("drop", "close"):
            await subs.close()
            pipe.send({})
            if command == "close":
                return


def _timings(subs: Subscribers, times_file: str | None) -> dict[str, object]:
    """What the subscribers received, with each delivery's latency from the release's send and commit times
    (``times_file``: release id -> [sent, visible]; without it every delivery counts as unknown)."""
    times: dict[str, list[float]] = orjson.loads(Path(times_file).read_bytes()) if times_file else {}
    total, feed = array.array("d"), array.array("d")
    unknown = 0
    for release_id, at in zip(subs.ids, subs.times, strict=True):
        known = times.get(release_id.decode())
        if known is None:
            unknown += 1
            continue
        total.append(at - known[0])
        feed.append(at - known[1])
    return {"total": total.tobytes(), "feed": feed.tobytes(), "unknown": unknown, "projects": subs.projects,
            "closes": dict(subs.closes),
            "messages": subs.messages, "bytes": dict(subs.bytes), "by_detail": dict(subs.deliveries)}


def subscriber_process(pipe: Connection) -> None:
    """Entry point of one subscriber process."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_loop(pipe))
