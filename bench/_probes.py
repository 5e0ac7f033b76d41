"""Read-side latencies at a store size: the API's record, search and change requests, and websocket backfills.

Each probe is sequential (one request at a time, keep-alive), so it measures the server and the store,
not queueing behind the probe's own requests. What is asked is drawn with a fixed seed, so two store
sizes are probed with the same kind of requests: random records of those stored, the same search words,
random cursors of the change log, and backfills of a fixed number of changes from random cursors.
"""

from __future__ import annotations

import http.client
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import orjson

from bench._common import percentile

WORD = re.compile(r"[^\W\d_]{5,}")


@dataclass(frozen=True)
class Latency:
    """Seconds of the requests of one probe."""

    samples: tuple[float, ...]

    @property
    def p50(self) -> float:
        return percentile(self.samples, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 0.99)


def search_words(titles: Sequence[str], count: int, seed: int = 14) -> list[str]:
    """``count`` search words drawn from tender titles (words of five letters or more), with repeats."""
    words = [w.lower() for title in titles for w in WORD.findall(title)]
    if not words:
        raise SystemExit("no words of five letters or more in the titles: cannot build search queries")
    rng = random.Random(seed)
    return [rng.choice(words) for _ in range(count)]


class Http:
    """One keep-alive connection to the feed server; ``get`` returns the seconds a request took."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def get(self, path: str) -> float:
        start = time.perf_counter()
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        body = response.read()
        seconds = time.perf_counter() - start
        if response.status != 200:
            raise SystemExit(f"GET {path} answered {response.status}: {body[:300]!r}")
        return seconds

    def close(self) -> None:
        self.conn.close()


def timed(paths: Sequence[str], request: Callable[[str], float]) -> Latency:
    request(paths[0])  # the connection, and the first-use costs of the server
    return Latency(tuple(request(path) for path in paths))


def backfill(port: int, after: int, count: int) -> float:
    """Seconds from connecting to receiving ``count`` changes after ``after`` (batched frames of 500)."""
    from websockets.sync.client import connect

    url = f"ws://127.0.0.1:{port}/ws/changes?{urlencode({'after': after, 'batch': 500})}"
    start = time.perf_counter()
    received = 0
    with connect(url, compression=None, max_size=None, open_timeout=60) as ws:
        while received < count:
            message = orjson.loads(ws.recv(timeout=120))
            kind = message["type"]
            if kind == "changes":
                received += len(message["changes"])
            elif kind == "change":
                received += 1
            elif kind == "error":
                raise SystemExit(f"websocket backfill after {after}: {message}")
    return time.perf_counter() - start


@dataclass(frozen=True)
class Probes:
    """The latencies of every probe at one store size."""

    records: Latency
    search: Latency
    changes: Latency
    backfill: Latency
    backfill_size: int

    def as_dict(self) -> dict[str, Latency]:
        return {"records": self.records, "search": self.search, "changes": self.changes, "backfill": self.backfill}


def probe(port: int, *, ocids: Sequence[str], words: Sequence[str], head: int, samples: int,
          backfills: int, backfill_size: int, seed: int) -> Probes:
    """Probe a running feed server whose store holds ``ocids`` and change cursors 1..``head``."""
    rng = random.Random(seed)
    client = Http(port)
    try:
        records = timed([f"/api/records/{quote(rng.choice(ocids), safe='')}" for _ in range(samples + 1)], client.get)
        search = timed([f"/api/search?{urlencode({'q': w})}" for w in [words[0], *words[:samples]]], client.get)
        changes = timed([f"/api/changes?after={rng.randrange(0, max(1, head - 100))}" for _ in range(samples + 1)],
                        client.get)
    finally:
        client.close()
    size = min(backfill_size, head)
    starts = [rng.randrange(0, head - size + 1) for _ in range(backfills + 1)]
    fills = timed([str(s) for s in starts], lambda after: backfill(port, int(after), size))
    return Probes(records, search, changes, fills, size)
