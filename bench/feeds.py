"""Websocket feed latency and CPU, old path beside new beside a bare broadcast loop; Atom and API requests/s.

    .venv/bin/python bench/feeds.py [--subscribers 1000] [--rate 200] [--seconds 45]
                                    [--hold 2000,5000,10000] [--hold-rate 20] [--hold-seconds 10]
                                    [--batch 100] [--paths old,new,new2] [--keep-going] [--clients 4]
                                    [--warm 3000] [--http-seconds 10] [--concurrency 16]

On an isolated stack (a fresh database and topics of its own) one ``ocds-live process`` worker and three
feed servers run as child processes: ``ocds-live serve`` (the **new** path: websockets' own connection
and the fan-out, feed_server/wsserver.py), ``ocds-live serve --websocket asgi`` (the **old** path:
the websocket through uvicorn's ASGI interface, one send per subscriber) and ``ocds-live serve
--workers 2`` (**new2**: the new path on two processes sharing the port, issue 14's scale-out), all with
``OCDS_LIVE_WS_MAX_PER_CLIENT`` and ``OCDS_LIVE_READ_RATE_LIMIT`` raised, since every subscriber comes
from 127.0.0.1. The store is warmed with ``--warm`` simulated releases first. Then:

1. **latency steps**: ``--subscribers`` subscribers on the old path, then the same ones on the new
   path, while simulated releases are sent at ``--rate``/s for ``--seconds``;
2. **the bare floor** (bench/feeds_bare.py): the same subscribers on a plain ``websockets`` server that
   replays the new path's latency step (the changes that became visible together, at the same pace)
   with ``broadcast()``, its frames encoded before the clock starts; its CPU per message received is
   the floor the new path's is compared with. It replays twice: with the rest of the stack idle, and
   while releases go through the worker at ``--rate``/s as during the new path's step (the same
   conditions: on 2 shared cores a busy worker, PostgreSQL and Kafka make every process's CPU per unit
   of work dearer, so only this replay compares like with like);
3. **hold steps**: at ``--hold-rate``/s, ``--hold`` subscribers (added, never dropped) on the old path,
   then on the new one, then twice as many on new2 (so that one server's p99 at N stands beside two
   servers' at 2N); each path stops at its first step whose p99 passes 1 s (``--keep-going``: not).

Subscribers are spread over ``--clients`` processes, each one asyncio loop of minimal websocket clients
(bench/feeds_client.py, which says what they cost), and every change each one receives is timed:

- **load -> receipt**: receipt time minus the send time (the ``produced-at`` header, taken in the sender);
- **commit -> receipt**: receipt time minus the moment the change became visible in the store (this
  process polls the change log every 20 ms), i.e. the feed server's share of the latency;
- **load -> commit**: that moment minus the send time, once per release (the worker's share).

Subscribers ask for batches (``batch=--batch``: the changes ready at each step of the server's hub
come as one ``changes`` message, all its changes timed with one receipt time). The clients are load,
not subject: to leave the cores to the server they read frames in place and pick the release ids out
of ``change`` and ``changes`` messages with ``bytes.find`` instead of parsing ~5 KB events in full.

All processes share one clock (``time.time()``). The mix of filters: 10% none, 30% one buyer, 20% one
procurement method, 20% a kind or kind prefix, 20% a minimum amount. The mix of details follows who
holds those filters: dashboards (no filter, or a method) ask for ``detail=brief``, watchdog bots (a
buyer, a kind, a minimum amount) for ``detail=summary``, i.e. 30% brief and 70% summary. Then, with the
subscribers gone, ``--concurrency`` concurrent httpx clients request ``/feeds/changes.atom``,
``/api/records/{ocid}`` and ``/api/changes?after=`` of the new path's server for ``--http-seconds``
each. Everything shares this machine's cores, the subscriber and HTTP clients included: the CPU columns
say who used them, and ``server us/delivery`` is the server's CPU time divided by the changes delivered
(``per msg``: by the messages received; ``clients us/msg``: the subscriber processes' CPU per message).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import itertools
import multiprocessing as mp
import random
import resource
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import orjson
import psycopg2

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._common import (  # noqa: E402
    CpuMeter,
    Process,
    base_settings,
    free_port,
    fresh_stack,
    generate,
    load_note,
    peak_rss_mb,
    percentile,
    service_pids,
    wait_http,
)
from bench.feeds_client import subscriber_process  # noqa: E402
from core.settings import Settings  # noqa: E402

PUBLISHER = "simulator"
LIMIT_P99 = 1.0  # seconds: stop adding subscribers once p99 passes this
PATHS = ("old", "new", "new2")  # ASGI, fan-out, fan-out on two processes sharing the port (serve --workers 2)


def family(pid: int) -> list[int]:
    """A process and its children (``serve --workers 2`` runs two server processes under a parent)."""
    import psutil

    with contextlib.suppress(psutil.Error):
        return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    return [pid]


# --- subscriber processes -------------------------------------------------------------------------------


def filter_queries(count: int, offset: int, buyers: list[str], rng: random.Random, batch: int) -> list[str]:
    """``count`` subscription query strings with the benchmark's mix of filters and details (``batch`` 0:
    unbatched): dashboards (no filter, or a method) ask for ``brief``, watchdog bots for ``summary``."""
    queries = []
    for n in range(offset, offset + count):
        slot = n % 10
        params: dict[str, str] = {"after": "now", **({"batch": str(batch)} if batch else {}),
                                  "detail": "brief" if slot in (0, 4, 5) else "summary"}
        if slot in (1, 2, 3):
            params["buyer"] = rng.choice(buyers)
        elif slot in (4, 5):
            params["method"] = rng.choice(("direct", "limited", "open"))
        elif slot in (6, 7):
            params["kind"] = rng.choice(("tender.", "award.", "contract.", "payment.recorded", "contract.signed"))
        elif slot in (8, 9):
            params["min_amount"] = rng.choice(("100000", "1000000", "10000000"))
        queries.append(urlencode(params))
    return queries


# --- sending and watching the store ----------------------------------------------------------------------


def outgoing(line: bytes) -> Any:
    from core.kafka import OutgoingRelease

    release = orjson.loads(line)
    return OutgoingRelease(release["ocid"], release["id"], line, PUBLISHER, "bench")


class StoreWatch:
    """Polls the change log every 20 ms: when each release's change to its record became visible (a later
    ``project.updated`` event that names the same release is the project builder's, not timed: see
    bench/feeds_client.py)."""

    def __init__(self, settings: Settings) -> None:
        self.conn = psycopg2.connect(settings.database_url)
        self.conn.autocommit = True
        self.visible: dict[str, float] = {}
        self.polls: list[tuple[float, list[int]]] = []  # when cursors became visible, together
        with self.conn.cursor() as cur:
            cur.execute("SELECT coalesce(max(cursor), 0) FROM changes")
            row = cur.fetchone()
            self.last = int(row[0]) if row else 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self.conn.cursor() as cur:
            while not self._stop.is_set():
                cur.execute("SELECT cursor, release_id, kind FROM changes WHERE cursor > %s ORDER BY cursor",
                            (self.last,))
                now = time.time()
                rows = cur.fetchall()
                for cursor, release_id, kind in rows:
                    self.last = cursor
                    if not kind.startswith("project."):
                        self.visible.setdefault(release_id, now)
                if rows:
                    self.polls.append((now, [cursor for cursor, _, _ in rows]))
                self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.conn.close()


def send(settings: Settings, lines: Iterator[bytes], count: int, rate: float) -> dict[str, float]:
    """Send ``count`` releases at ``rate``/s; release id -> send time (the produced-at header's moment)."""
    from core.kafka import ReleaseProducer

    producer = ReleaseProducer(settings, client_id="bench-feeds")
    sent: dict[str, float] = {}
    start = time.monotonic()
    for n, line in enumerate(itertools.islice(lines, count)):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        item = outgoing(line)
        sent[item.release_id] = time.time()
        producer.send(item)
    producer.flush(timeout=60)
    producer.close()
    return sent


def wait_consumed(settings: Settings, total: int, timeout: float = 300) -> None:
    conn = psycopg2.connect(settings.database_url)
    conn.autocommit = True
    deadline = time.monotonic() + timeout
    try:
        with conn.cursor() as cur:
            while time.monotonic() < deadline:
                cur.execute("SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE consumer_group = %s",
                            (settings.app_id,))
                row = cur.fetchone()
                if row and int(row[0]) >= total:
                    return
                time.sleep(0.2)
    finally:
        conn.close()
    raise SystemExit(f"the worker did not process {total} releases within {timeout:.0f}s")


def event_sizes(settings: Settings, after: int) -> tuple[int, dict[str, float]]:
    """How many change events the store has past cursor ``after``, and their average encoded size at each
    detail, encoded as the server encodes them (compact JSON, ASCII)."""
    from feed_server.encoding import ascii_json, brief

    conn = psycopg2.connect(settings.database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT event::text FROM changes WHERE cursor > %s ORDER BY cursor", (after,))
            events = [orjson.loads(row[0]) for row in cur.fetchall()]
    finally:
        conn.close()
    if not events:
        return 0, {}
    return len(events), {"summary": sum(len(ascii_json(e)) for e in events) / len(events),
                         "brief": sum(len(ascii_json(brief(e))) for e in events) / len(events)}


def store_sample(settings: Settings) -> tuple[list[str], list[str], int]:
    """Buyer ids, ocids and the head cursor of the warmed store."""
    conn = psycopg2.connect(settings.database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT DISTINCT buyer_id FROM records WHERE buyer_id IS NOT NULL")
            buyers = sorted(r[0] for r in cur.fetchall())
            cur.execute("SELECT ocid FROM records")
            ocids = sorted(r[0] for r in cur.fetchall())
            cur.execute("SELECT last FROM feed_counter")
            row = cur.fetchone()
            return buyers, ocids, int(row[0]) if row else 0
    finally:
        conn.close()


# --- one step of subscribers -----------------------------------------------------------------------------


@dataclass
class Step:
    subscribers: int
    sent: int
    changes: int
    deliveries: int
    total: list[float]
    feed: list[float]
    closes: Counter[str]
    cpu: dict[str, float]  # share of one core, by process kind
    server_rss: float
    connect_failed: int
    batch: int  # 0: unbatched subscribers
    messages: int  # change / changes messages received
    received: int  # changes received in all (also of releases sent before the step)
    wall: float  # seconds the CPU was metered
    commit: list[float]  # load -> commit (visible in the store), once per release
    bytes: Counter[str]  # detail -> bytes of change / changes messages received
    by_detail: Counter[str]  # detail -> changes received
    details: Counter[str]  # detail -> subscribers
    polls: list[tuple[float, list[int]]]  # when cursors became visible in the store, together
    path: str = "new"  # the feed server's websocket path: new (fan-out) or old (ASGI)
    rate: float = 0.0  # releases/s sent

    def bytes_per_delivery(self, detail: str | None = None) -> float:
        """Average bytes received per change delivered, of one detail or of all."""
        size = self.bytes[detail] if detail else sum(self.bytes.values())
        count = self.by_detail[detail] if detail else sum(self.by_detail.values())
        return size / count if count else float("nan")

    def mix(self) -> str:
        total = sum(self.details.values())
        return " ".join(f"{d} {n / total:.0%}" for d, n in sorted(self.details.items())) if total else "-"

    @property
    def clients_us(self) -> float:
        """The subscriber processes' CPU microseconds per message they received."""
        return self.cpu["subscriber clients"] * self.wall * 1e6 / max(1, self.messages)

    @property
    def server_us(self) -> tuple[float, float]:
        """The server's CPU microseconds per change delivered, and per message sent."""
        busy = self.cpu["server"] * self.wall * 1e6
        return busy / max(1, self.received), busy / max(1, self.messages)


def run_step(settings: Settings, pipes: list[Connection], lines: Iterator[bytes], subscribers: int,
             rate: float, seconds: float, folder: Path, pids: dict[str, list[int]], consumed: int,
             failed: int, batch: int, details: Counter[str]) -> tuple[Step, int]:
    """Send for ``seconds`` and time every delivery; the step and how many releases were consumed in all."""
    watch = StoreWatch(settings)
    for pipe in pipes:
        pipe.send(("start", None))
    for pipe in pipes:
        pipe.recv()
    meter = CpuMeter({**pids, "postgres + kafka": service_pids})
    meter.start()
    began = time.monotonic()
    sent = send(settings, lines, int(rate * seconds), rate)
    consumed += len(sent)
    wait_consumed(settings, consumed)
    time.sleep(2.0)  # the last changes reach the subscribers
    cpu = meter.stop()
    wall = time.monotonic() - began
    watch.stop()
    times = {r: [t, watch.visible.get(r, float("nan"))] for r, t in sent.items()}
    path = folder / "times.json"
    path.write_bytes(orjson.dumps(times))
    total: list[float] = []
    feed: list[float] = []
    closes: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    by_detail: Counter[str] = Counter()
    messages = unknown = projects = 0
    for pipe in pipes:
        pipe.send(("stop", str(path)))
    for pipe in pipes:
        answer = pipe.recv()
        total += array.array("d", answer["total"]).tolist()
        feed += array.array("d", answer["feed"]).tolist()
        closes.update(answer["closes"])
        messages += answer["messages"]
        unknown += answer["unknown"]
        projects += answer["projects"]
        sizes.update(answer["bytes"])
        by_detail.update(answer["by_detail"])
    if unknown:
        closes["deliveries of releases not sent in the step"] += unknown
    if projects:
        closes["project.updated deliveries (the builder's lag, not timed)"] += projects
    changes = len([r for r in sent if r in watch.visible])
    commit = [watch.visible[r] - t for r, t in sent.items() if r in watch.visible]
    step = Step(subscribers, len(sent), changes, len(total), total, feed, closes, cpu,
                max(map(peak_rss_mb, pids["server"])), failed, batch, messages, len(total) + unknown + projects, wall,
                commit, sizes, by_detail, Counter(details), watch.polls)
    return step, consumed


# --- HTTP ----------------------------------------------------------------------------------------------


async def hammer(base: str, paths: list[str], seconds: float, concurrency: int) -> tuple[int, float, Counter[str],
                                                                                        list[float]]:
    """Requests cycling over ``paths`` from ``concurrency`` clients for ``seconds``: (count, wall, statuses, lat)."""
    import httpx

    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def worker(n: int) -> None:
            i = n
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    response = await client.get(paths[i % len(paths)])
                    await response.aread()
                    statuses[str(response.status_code)] += 1
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                latencies.append(time.perf_counter() - start)
                i += concurrency

        start = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        wall = time.perf_counter() - start
    return len(latencies), wall, statuses, latencies


# --- the run --------------------------------------------------------------------------------------------


def ms(value: float) -> str:
    return f"{value * 1e3:>8.0f}" if value == value else f"{'-':>8}"


@dataclass
class Planned:
    path: str  # "old" (the ASGI websocket path) or "new" (the fan-out)
    subscribers: int
    rate: float
    seconds: float
    hold: bool  # a step of the search for the most subscribers held with p99 under LIMIT_P99


@dataclass
class Bare:
    busy: bool  # replayed while the worker processed releases at the step's rate (as during the new path's step)
    subscribers: int
    messages: int  # received by the subscribers
    deliveries: int
    cpu: float  # seconds of the bare server's process over the replay
    wall: float

    @property
    def us_per_message(self) -> float:
        return self.cpu * 1e6 / max(1, self.messages)


def run_bare(ctx: Any, pipes: list[Connection], queries: list[str], settings: Settings,
             polls: list[tuple[float, list[int]]], busy: Callable[[], None]) -> list[Bare]:
    """Replay the polls' changes to ``queries`` through a bare ``websockets.broadcast`` server, twice: with the
    rest of the stack idle, then while ``busy`` runs in a thread (releases sent through the worker at the
    step's rate, so that the machine is as busy as during the new path's step: the fair comparison)."""
    from bench.feeds_bare import bare_process

    port = free_port()
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=bare_process, args=(theirs, port, settings.database_url), daemon=True)
    child.start()
    try:
        ours.recv()
        for i, pipe in enumerate(pipes):
            pipe.send(("connect", (f"ws://127.0.0.1:{port}/ws/changes", queries[i::len(pipes)])))
        failed = sum(pipe.recv()["failed"] for pipe in pipes)
        print(f"{len(queries):,} subscribers connected to the bare broadcast server ({failed} failed)", flush=True)
        results = []
        for loaded in (False, True):
            for pipe in pipes:
                pipe.send(("start", None))
            for pipe in pipes:
                pipe.recv()
            first = polls[0][0]
            background = threading.Thread(target=busy, name="bench-busy") if loaded else None
            if background is not None:
                background.start()
            ours.send(("replay", [(at - first, cursors) for at, cursors in polls]))
            result = ours.recv()
            if background is not None:
                background.join()
            messages = deliveries = 0
            for pipe in pipes:
                pipe.send(("stop", None))
            for pipe in pipes:
                answer = pipe.recv()
                messages += answer["messages"]
                deliveries += answer["unknown"] + answer["projects"]  # ids are "unknown" without a times file
            results.append(Bare(loaded, len(queries), messages, deliveries, result["cpu"], result["wall"]))
        for pipe in pipes:
            pipe.send(("drop", None))
        for pipe in pipes:
            pipe.recv()
        ours.send(("close", None))
        ours.recv()
    finally:
        child.join(5)
        if child.is_alive():
            child.kill()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1000, help="subscribers of the latency steps")
    parser.add_argument("--rate", type=float, default=200.0, help="releases/s sent during the latency steps")
    parser.add_argument("--seconds", type=float, default=45.0,
                        help="sending time of a latency step (at 200 releases/s a 15 s step is ~190 steps of the "
                             "hub, and its p99 rests on the two or three largest)")
    parser.add_argument("--hold", default="2000,5000,10000",
                        help="subscribers of the steps at --hold-rate, comma-separated (each path stops at the "
                             "first step whose p99 passes 1 s)")
    parser.add_argument("--hold-rate", type=float, default=20.0, help="releases/s sent during the hold steps")
    parser.add_argument("--hold-seconds", type=float, default=10.0, help="sending time of a hold step")
    parser.add_argument("--batch", type=int, default=100,
                        help="changes per message the subscribers ask for (0: one message per change)")
    parser.add_argument("--paths", default="old,new,new2",
                        help="which websocket paths to run: old (ASGI), new (fan-out), new2 (hold steps only: the "
                             "fan-out on `serve --workers 2`, two processes sharing the port, with twice each --hold)")
    parser.add_argument("--keep-going", action="store_true", help="run every hold step, even after p99 passed 1 s")
    parser.add_argument("--clients", type=int, default=4, help="subscriber processes")
    parser.add_argument("--warm", type=int, default=3000, help="releases in the store before the first step")
    parser.add_argument("--http-seconds", type=float, default=10.0, help="0: no HTTP measurements")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent HTTP clients")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    paths = [p for p in PATHS if p in args.paths.split(",")]
    holds = sorted(int(n) for n in args.hold.split(",") if n.strip() and int(n) > 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server child inherits it
    if max([args.subscribers, *holds]) + 1000 > hard:
        print(f"note: the open-files limit is {hard}; {max(holds):,} subscribers may not fit")
    settings = base_settings()
    ports = {path: free_port() for path in PATHS}
    env = {"OCDS_LIVE_WS_MAX_PER_CLIENT": "1000000", "OCDS_LIVE_READ_RATE_LIMIT": "1000000"}
    plan = [Planned(path, args.subscribers, args.rate, args.seconds, False) for path in paths if path != "new2"]
    plan += [Planned(path, n * (2 if path == "new2" else 1), args.hold_rate, args.hold_seconds, True)
             for path in paths for n in holds]
    needed = args.warm + int(sum(p.rate * p.seconds for p in plan) + args.rate * args.seconds) + 1000  # + the bare

    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="ocds-bench-") as tmp:
        folder = Path(tmp)
        jsonl = folder / "releases.jsonl"
        count, size = generate(jsonl, needed)
        print(f"generated {count:,} simulated releases ({size / count / 1e3:.1f} KB each)", flush=True)
        with fresh_stack(settings, port=ports["new"]) as stack, jsonl.open("rb") as f:
            lines = (line.rstrip(b"\n") for line in f)
            worker = Process(stack, "process", log=folder / "worker.log")
            commands = {"new": [], "old": ["--websocket", "asgi"], "new2": ["--workers", "2"]}
            servers = {path: Process(stack, "serve", *commands[path], "--port", str(ports[path]),
                                     log=folder / f"server-{path}.log", **env)
                       for path in PATHS if path in paths or path == "new"}  # new: also the HTTP measurements
            ctx = mp.get_context("spawn")
            pipes: list[Connection] = []
            children: list[Any] = []
            results: list[Step] = []
            bare: list[Bare] = []
            http: list[tuple[str, int, float, Counter[str], list[float], float, float]] = []
            try:
                for path in servers:
                    wait_http(f"http://127.0.0.1:{ports[path]}/healthz")
                send(stack, lines, args.warm, 5000.0)
                wait_consumed(stack, args.warm)
                buyers, ocids, head = store_sample(stack)
                print(f"warmed the store: {args.warm:,} releases, {len(ocids):,} records, {head:,} changes, "
                      f"{len(buyers)} buyers", flush=True)
                for _ in range(args.clients):
                    ours, theirs = ctx.Pipe()
                    child = ctx.Process(target=subscriber_process, args=(theirs,), daemon=True)
                    child.start()
                    pipes.append(ours)
                    children.append(child)
                consumed = args.warm
                connected = 0
                queries: list[str] = []
                details: Counter[str] = Counter()  # detail -> subscribers connected
                first_cursor = head
                failed_paths: set[str] = set()
                previous: Planned | None = None
                for planned in plan:
                    if planned.hold and planned.path in failed_paths and not args.keep_going:
                        continue
                    if previous is None or (planned.path, planned.hold) != (previous.path, previous.hold):
                        for pipe in pipes:
                            pipe.send(("drop", None))
                        for pipe in pipes:
                            pipe.recv()
                        connected, queries, rng = 0, [], random.Random(7)  # the same subscribers for each path
                        details.clear()
                        time.sleep(3.0)  # whatever a server still sent them is gone
                    previous = planned
                    url = f"ws://127.0.0.1:{ports[planned.path]}/ws/changes"
                    t0 = time.time()
                    new = filter_queries(planned.subscribers - connected, connected, buyers, rng, args.batch)
                    queries += new
                    details.update(parse_qs(q).get("detail", ["summary"])[0] for q in new)
                    for i, pipe in enumerate(pipes):
                        pipe.send(("connect", (url, new[i::len(pipes)])))
                    failed = sum(pipe.recv()["failed"] for pipe in pipes)
                    connected = planned.subscribers
                    print(f"{planned.path} path: {connected:,} subscribers connected in {time.time() - t0:.1f}s "
                          f"({failed} failed); {planned.rate:g} releases/s for {planned.seconds:g}s", flush=True)
                    pids = {"worker": family(worker.pid), "server": family(servers[planned.path].pid),
                            "idle server": [p for path, proc in servers.items() if path != planned.path
                                            for p in family(proc.pid)],
                            "subscriber clients": [c.pid for c in children]}
                    step, consumed = run_step(stack, pipes, lines, connected, planned.rate, planned.seconds, folder,
                                              pids, consumed, failed, args.batch, details)
                    step.path, step.rate = planned.path, planned.rate
                    results.append(step)
                    p99 = percentile(step.total, 0.99)
                    per_change, per_message = step.server_us
                    print(f"  load->receipt p50 {percentile(step.total, 0.5) * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms; "
                          f"commit->receipt p99 {percentile(step.feed, 0.99) * 1e3:.0f} ms; {step.deliveries:,} "
                          f"deliveries in {step.messages:,} messages; server {per_change:.1f} us/delivery, "
                          f"{per_message:.1f} us/message; CPU "
                          + ", ".join(f"{k} {v:.2f}" for k, v in step.cpu.items()) + " cores", flush=True)
                    if planned.hold and not p99 <= LIMIT_P99:
                        failed_paths.add(planned.path)
                    if planned.path == "new" and not planned.hold and step.polls:
                        for pipe in pipes:
                            pipe.send(("drop", None))
                        for pipe in pipes:
                            pipe.recv()
                        previous = None
                        def busy() -> None:
                            nonlocal consumed
                            consumed += len(send(stack, lines, int(args.rate * args.seconds), args.rate))
                            wait_consumed(stack, consumed)

                        bare = run_bare(ctx, pipes, queries, stack, step.polls, busy)
                        print("bare broadcast: " + ", ".join(f"{b.messages:,} messages, {b.us_per_message:.1f} "
                                                             f"us/message (pipeline {'busy' if b.busy else 'idle'})"
                                                             for b in bare), flush=True)
                for pipe in pipes:
                    pipe.send(("close", None))
                for pipe in pipes:
                    pipe.recv()
                sizes = event_sizes(stack, first_cursor)
                rng = random.Random(11)
                _, ocids, head = store_sample(stack)
                picked = rng.sample(ocids, min(2000, len(ocids)))
                workloads = [
                    ("Atom /feeds/changes.atom", ["/feeds/changes.atom"]),
                    ("API /api/records/{ocid}", [f"/api/records/{o}" for o in picked]),
                    ("API /api/changes?after=", [f"/api/changes?after={rng.randrange(head)}" for _ in range(2000)]),
                ] if args.http_seconds > 0 else []
                for name, urls in workloads:
                    meter = CpuMeter({"server": [servers["new"].pid]})
                    meter.start()
                    n, wall, statuses, lat = asyncio.run(hammer(f"http://127.0.0.1:{ports['new']}", urls,
                                                                args.http_seconds, args.concurrency))
                    cores = meter.stop()
                    http.append((name, n, wall, statuses, lat, cores["machine"], cores["server"]))
                    print(f"{name}: {n / wall:,.0f} requests/s", flush=True)
                server_rss = {path: peak_rss_mb(proc.pid) for path, proc in servers.items()}
            except BaseException:
                for proc in (worker, *servers.values()):
                    tail = "\n".join(proc.output().splitlines()[-25:])
                    print(f"--- the last lines of {proc.log.name}:\n{tail}", file=sys.stderr)
                raise
            finally:
                for child in children:
                    child.join(5)
                    if child.is_alive():
                        child.kill()
                worker.stop()
                for proc in servers.values():
                    proc.stop()

    report(args, results, bare, sizes, http, server_rss)
    return 0


def report(args: argparse.Namespace, results: list[Step], bare: list[Bare], sizes: tuple[int, dict[str, float]],
           http: list[tuple[str, int, float, Counter[str], list[float], float, float]],
           server_rss: dict[str, float]) -> None:
    print()
    print(f"websocket: load -> receipt by subscribers, mixed filters, batch={args.batch or 'unbatched'}, "
          f"{args.clients} subscriber processes, one run; old = ASGI path (serve --websocket asgi), new = fan-out, "
          f"new2 = fan-out on two processes sharing the port (serve --workers 2; server columns: both); "
          f"{load_note()} at the end")
    header = (f"{'path':>4} {'rate/s':>6} {'subscribers':>11} {'details':>21} {'secs':>4} {'sent':>6} {'changes':>7} "
              f"{'deliveries':>10} {'per sub':>7} {'messages':>9} {'B/delivery':>10} | "
              f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} | {'load->commit p99':>16} | "
              f"{'commit->receipt p99':>19} | {'cores: machine':>14} {'worker':>6} {'server':>6} "
              f"{'clients':>7} {'pg+kafka':>8} | {'server us/delivery':>18} {'per msg':>7} "
              f"{'server RSS MB':>13} {'clients us/msg':>14}  closes")
    print(header)
    print("-" * len(header))
    for s in results:
        share = s.deliveries / max(1, s.changes * s.subscribers)
        closes = ", ".join(f"{k}: {v}" for k, v in s.closes.items()) or "-"
        per_change, per_message = s.server_us
        seconds = s.wall
        print(f"{s.path:>4} {s.rate:>6.0f} {s.subscribers:>11,} {s.mix():>21} {seconds:>4.0f} {s.sent:>6,} "
              f"{s.changes:>7,} {s.deliveries:>10,} {share:>7.1%} {s.messages:>9,} {s.bytes_per_delivery():>10,.0f} | "
              f"{ms(percentile(s.total, 0.5))} {ms(percentile(s.total, 0.99))} {ms(max(s.total, default=float('nan')))}"
              f" | {percentile(s.commit, 0.99) * 1e3:>16.0f} | {percentile(s.feed, 0.99) * 1e3:>19.0f} | "
              f"{s.cpu['machine']:>14.2f} {s.cpu['worker']:>6.2f} {s.cpu['server']:>6.2f} "
              f"{s.cpu['subscriber clients']:>7.2f} {s.cpu['postgres + kafka']:>8.2f} | "
              f"{per_change:>18.1f} {per_message:>7.1f} {s.server_rss:>13,.0f} {s.clients_us:>14.1f}  {closes}")
    for b in bare:
        print(f"bare websockets.broadcast loop, the new path's {args.rate:g}/s step replayed (same changes, steps, "
              f"groups and frames) to {b.subscribers:,} subscribers, with the worker "
              f"{'processing releases at the same rate' if b.busy else 'idle'}: {b.messages:,} messages, "
              f"{b.deliveries:,} deliveries, {b.cpu / b.wall:.2f} cores, {b.us_per_message:.1f} us/message")
    events, average = sizes
    if events:
        print(f"change events of the run ({events:,}), encoded as the server sends them: "
              + ", ".join(f"{d} {b:,.0f} B" for d, b in average.items()) + " on average")

    print()
    print("what issue 15 asks, from the rows above:")
    latency = {s.path: s for s in results if s.rate == args.rate and s.subscribers == args.subscribers}
    if "new" in latency:
        new_us = latency["new"].server_us[1]
        for b in sorted(bare, key=lambda b: not b.busy):
            print(f"- server CPU per delivered message, new path / bare broadcast "
                  f"({'both while the worker processes releases' if b.busy else 'bare with the worker idle'}): "
                  f"{new_us:.1f} / {b.us_per_message:.1f} us = {new_us / b.us_per_message:.2f}x (target <= 1.5x)")
    if "new" in latency and "old" in latency:
        old99, new99 = (percentile(latency[p].total, 0.99) for p in ("old", "new"))
        print(f"- p99 at {args.subscribers:,} subscribers, {args.rate:g} releases/s, load -> receipt: old "
              f"{old99 * 1e3:.0f} ms, new {new99 * 1e3:.0f} ms = {new99 / old99:.2f}x of old (target <= 0.5x)")
        old99, new99 = (percentile(latency[p].feed, 0.99) for p in ("old", "new"))
        print(f"  commit -> receipt (the feed server's delivery alone, without the worker's share): old "
              f"{old99 * 1e3:.0f} ms, new {new99 * 1e3:.0f} ms = {new99 / old99:.2f}x of old")
    for path in PATHS:
        held = [s.subscribers for s in results if s.path == path and s.rate == args.hold_rate
                and percentile(s.total, 0.99) <= LIMIT_P99]
        tried = [s.subscribers for s in results if s.path == path and s.rate == args.hold_rate]
        if tried:
            print(f"- {path} path at {args.hold_rate:g} releases/s: most subscribers held with p99 <= "
                  f"{LIMIT_P99:.0f} s: {max(held):,}" if held else f"- {path} path: no step kept p99 <= 1 s",
                  f"(steps tried: {', '.join(f'{n:,}' for n in tried)})")
    one = {s.subscribers: s for s in results if s.path == "new" and s.rate == args.hold_rate}
    two = {s.subscribers: s for s in results if s.path == "new2" and s.rate == args.hold_rate}
    for n in sorted(one):
        if 2 * n in two:
            print(f"- issue 14 (scale-out) at {args.hold_rate:g} releases/s: {n:,} subscribers on one feed server "
                  f"process p99 {percentile(one[n].total, 0.99) * 1e3:.0f} ms; {2 * n:,} on two (serve --workers 2) "
                  f"p99 {percentile(two[2 * n].total, 0.99) * 1e3:.0f} ms")

    if http:
        print()
        print(f"HTTP on the new path's server, {args.concurrency} concurrent httpx clients in one process, "
              f"{args.http_seconds:.0f}s each, idle stack (server peak RSS {server_rss['new']:,.0f} MB)")
        header = (f"{'':<28} {'requests':>9} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'cores: machine':>14} "
                  f"{'server':>6}  statuses")
        print(header)
        print("-" * len(header))
        for name, n, wall, statuses, lat, machine, served in http:
            print(f"{name:<28} {n:>9,} {n / wall:>11,.0f} {ms(percentile(lat, 0.5))} {ms(percentile(lat, 0.99))} "
                  f"{machine:>14.2f} {served:>6.2f}  {dict(statuses)}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
