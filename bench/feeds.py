"""Feed latency to websocket subscribers as they grow, and Atom and API requests/s, on a real stack.

    .venv/bin/python bench/feeds.py [--subscribers 1000,2000,5000,10000] [--rate 200] [--seconds 20]
                                    [--clients 4] [--http-seconds 10] [--concurrency 16]

On an isolated stack (a fresh database and topics of its own) one ``ocds-live process`` worker and one
``ocds-live serve`` run as child processes (``OCDS_LIVE_WS_MAX_PER_CLIENT`` and
``OCDS_LIVE_READ_RATE_LIMIT`` raised, since every subscriber comes from 127.0.0.1). The store is
warmed with ``--warm`` simulated releases first. Then, for each number of subscribers (connections are
added, never dropped, and spread over ``--clients`` subscriber processes, each one asyncio loop of
``websockets`` clients), simulated releases are sent for ``--seconds`` at ``--rate``/s with
``ReleaseProducer`` (what ``ocds-live load`` uses) and every change each subscriber receives is timed:

- **load -> receipt**: receipt time minus the send time (the ``produced-at`` header, taken in the sender);
- **commit -> receipt**: receipt time minus the moment the change became visible in the store (this
  process polls the change log every 20 ms), i.e. the feed server's share of the latency.

All processes share one clock (``time.time()``). The mix of filters: 10% none, 30% one buyer, 20% one
procurement method, 20% a kind or kind prefix, 20% a minimum amount. Stepping stops once p99 passes
1 s. Then, with the subscribers gone, ``--concurrency`` concurrent httpx clients request
``/feeds/changes.atom``, ``/api/records/{ocid}`` (random ocids of the store) and ``/api/changes?after=``
(random cursors) for ``--http-seconds`` each. Everything shares this machine's cores, the subscriber
and HTTP clients included: the CPU columns say who used them.
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
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

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
from core.settings import Settings  # noqa: E402

PUBLISHER = "simulator"
LIMIT_P99 = 1.0  # seconds: stop adding subscribers once p99 passes this


# --- subscriber processes -------------------------------------------------------------------------------


class Subscribers:
    """The websocket clients of one subscriber process, driven by commands from the parent."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.tasks: list[asyncio.Task[None]] = []
        self.received: list[tuple[str, float]] = []
        self.recording = False
        self.closes: Counter[str] = Counter()
        self.connected = 0

    async def _one(self, query: str, ready: asyncio.Future[bool]) -> None:
        from websockets.asyncio.client import connect

        try:
            async with connect(f"{self.url}?{query}", compression=None, open_timeout=120, ping_interval=None,
                               max_queue=None, close_timeout=2) as ws:
                async for message in ws:
                    now = time.time()
                    if self.recording:
                        data = orjson.loads(message)
                        if data.get("type") == "change":
                            self.received.append((data["change"]["release_id"], now))
                        elif data.get("type") == "error":
                            self.closes[f"error {data.get('code')}"] += 1
                    elif not ready.done() and orjson.loads(message).get("type") in ("subscribed", "caught_up"):
                        self.connected += 1
                        ready.set_result(True)
                self.closes[f"closed {ws.close_code}"] += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - count it, the benchmark reports it
            self.closes[type(exc).__name__] += 1
        finally:
            if not ready.done():
                ready.set_result(False)

    async def connect(self, queries: list[str], parallel: int = 64) -> int:
        """Open one connection per query (at most ``parallel`` handshakes at once); how many failed."""
        failed = 0
        for start in range(0, len(queries), parallel):
            readies = []
            for query in queries[start:start + parallel]:
                ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
                self.tasks.append(asyncio.create_task(self._one(query, ready)))
                readies.append(ready)
            failed += sum(not ok for ok in await asyncio.gather(*readies))
        return failed

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _subscriber_loop(pipe: Connection, url: str) -> None:
    subs = Subscribers(url)
    loop = asyncio.get_running_loop()
    while True:
        command, arg = await loop.run_in_executor(None, pipe.recv)
        if command == "connect":
            failed = await subs.connect(arg)
            pipe.send({"failed": failed, "connected": subs.connected})
        elif command == "start":
            subs.received.clear()
            subs.closes.clear()
            subs.recording = True
            pipe.send({})
        elif command == "stop":
            subs.recording = False
            times: dict[str, list[float]] = orjson.loads(Path(arg).read_bytes())
            total, feed = array.array("d"), array.array("d")
            unknown = 0
            for release_id, at in subs.received:
                known = times.get(release_id)
                if known is None:
                    unknown += 1
                    continue
                total.append(at - known[0])
                feed.append(at - known[1])
            pipe.send({"total": total.tobytes(), "feed": feed.tobytes(), "unknown": unknown,
                       "closes": dict(subs.closes)})
        elif command == "close":
            await subs.close()
            pipe.send({})
            return


def subscriber_process(pipe: Connection, url: str) -> None:
    """Entry point of one subscriber process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_subscriber_loop(pipe, url))


def filter_queries(count: int, offset: int, buyers: list[str], rng: random.Random) -> list[str]:
    """``count`` subscription query strings with the benchmark's mix of filters."""
    queries = []
    for n in range(offset, offset + count):
        slot = n % 10
        params: dict[str, str] = {"after": "now"}
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
    """Polls the change log every 20 ms: when each release's change became visible."""

    def __init__(self, settings: Settings) -> None:
        self.conn = psycopg2.connect(settings.database_url)
        self.conn.autocommit = True
        self.visible: dict[str, float] = {}
        self.last = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self.conn.cursor() as cur:
            while not self._stop.is_set():
                cur.execute("SELECT cursor, release_id FROM changes WHERE cursor > %s ORDER BY cursor", (self.last,))
                now = time.time()
                for cursor, release_id in cur.fetchall():
                    self.last = cursor
                    self.visible[release_id] = now
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


def run_step(settings: Settings, pipes: list[Connection], lines: Iterator[bytes], subscribers: int,
             rate: float, seconds: float, folder: Path, pids: dict[str, list[int]], consumed: int,
             failed: int) -> tuple[Step, int]:
    """Send for ``seconds`` and time every delivery; the step and how many releases were consumed in all."""
    watch = StoreWatch(settings)
    for pipe in pipes:
        pipe.send(("start", None))
    for pipe in pipes:
        pipe.recv()
    meter = CpuMeter({**pids, "postgres + kafka": service_pids})
    meter.start()
    sent = send(settings, lines, int(rate * seconds), rate)
    consumed += len(sent)
    wait_consumed(settings, consumed)
    time.sleep(2.0)  # the last changes reach the subscribers
    cpu = meter.stop()
    watch.stop()
    times = {r: [t, watch.visible.get(r, float("nan"))] for r, t in sent.items()}
    path = folder / "times.json"
    path.write_bytes(orjson.dumps(times))
    total: list[float] = []
    feed: list[float] = []
    closes: Counter[str] = Counter()
    for pipe in pipes:
        pipe.send(("stop", str(path)))
    for pipe in pipes:
        answer = pipe.recv()
        total += array.array("d", answer["total"]).tolist()
        feed += array.array("d", answer["feed"]).tolist()
        closes.update(answer["closes"])
        if answer["unknown"]:
            closes["deliveries of releases not sent in the step"] += answer["unknown"]
    changes = len([r for r in sent if r in watch.visible])
    step = Step(subscribers, len(sent), changes, len(total), total, feed, closes, cpu,
                peak_rss_mb(pids["server"][0]), failed)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", default="1000,2000,5000,10000", help="steps, comma-separated")
    parser.add_argument("--rate", type=float, default=200.0, help="releases/s sent during each step")
    parser.add_argument("--seconds", type=float, default=20.0, help="sending time per step")
    parser.add_argument("--clients", type=int, default=4, help="subscriber processes")
    parser.add_argument("--warm", type=int, default=3000, help="releases in the store before the first step")
    parser.add_argument("--http-seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent HTTP clients")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    steps = sorted(int(s) for s in args.subscribers.split(",") if int(s) > 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server child inherits it
    if max(steps) + 1000 > hard:
        print(f"note: the open-files limit is {hard}; {max(steps):,} subscribers may not fit")
    settings = base_settings()
    port = free_port()
    env = {"OCDS_LIVE_PORT": str(port), "OCDS_LIVE_WS_MAX_PER_CLIENT": "1000000",
           "OCDS_LIVE_READ_RATE_LIMIT": "1000000"}
    needed = args.warm + int(args.rate * args.seconds) * len(steps) + 1000

    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="ocds-bench-") as tmp:
        folder = Path(tmp)
        jsonl = folder / "releases.jsonl"
        count, size = generate(jsonl, needed)
        print(f"generated {count:,} simulated releases ({size / count / 1e3:.1f} KB each)", flush=True)
        with fresh_stack(settings, port=port) as stack, jsonl.open("rb") as f:
            lines = (line.rstrip(b"\n") for line in f)
            worker = Process(stack, "process", log=folder / "worker.log")
            server = Process(stack, "serve", log=folder / "server.log", **env)
            ctx = mp.get_context("spawn")
            pipes: list[Connection] = []
            children: list[Any] = []
            results: list[Step] = []
            http: list[tuple[str, int, float, Counter[str], list[float], float, float]] = []
            try:
                base = f"http://127.0.0.1:{port}"
                wait_http(f"{base}/healthz")
                send(stack, lines, args.warm, 5000.0)
                wait_consumed(stack, args.warm)
                buyers, ocids, head = store_sample(stack)
                print(f"warmed the store: {args.warm:,} releases, {len(ocids):,} records, {head:,} changes, "
                      f"{len(buyers)} buyers", flush=True)
                for _ in range(args.clients):
                    ours, theirs = ctx.Pipe()
                    child = ctx.Process(target=subscriber_process, args=(theirs, f"ws://127.0.0.1:{port}/ws/changes"),
                                        daemon=True)
                    child.start()
                    pipes.append(ours)
                    children.append(child)
                pids = {"worker": [worker.pid], "server": [server.pid],
                        "subscriber clients": [c.pid for c in children]}
                consumed = args.warm
                rng = random.Random(7)
                connected = 0
                for target in steps:
                    t0 = time.time()
                    queries = filter_queries(target - connected, connected, buyers, rng)
                    for n, pipe in enumerate(pipes):
                        pipe.send(("connect", queries[n::len(pipes)]))
                    failed = sum(pipe.recv()["failed"] for pipe in pipes)
                    connected = target
                    print(f"{target:,} subscribers connected in {time.time() - t0:.1f}s ({failed} failed)",
                          flush=True)
                    step, consumed = run_step(stack, pipes, lines, target, args.rate, args.seconds, folder, pids,
                                              consumed, failed)
                    results.append(step)
                    p99 = percentile(step.total, 0.99)
                    print(f"  load->receipt p50 {percentile(step.total, 0.5) * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms; "
                          f"commit->receipt p50 {percentile(step.feed, 0.5) * 1e3:.0f} ms, "
                          f"p99 {percentile(step.feed, 0.99) * 1e3:.0f} ms; {step.deliveries:,} deliveries; CPU "
                          + ", ".join(f"{k} {v:.2f}" for k, v in step.cpu.items()) + " cores", flush=True)
                    if not p99 < LIMIT_P99:
                        break
                for pipe in pipes:
                    pipe.send(("close", None))
                for pipe in pipes:
                    pipe.recv()
                rng = random.Random(11)
                _, ocids, head = store_sample(stack)
                picked = rng.sample(ocids, min(2000, len(ocids)))
                workloads = [
                    ("Atom /feeds/changes.atom", ["/feeds/changes.atom"]),
                    ("API /api/records/{ocid}", [f"/api/records/{o}" for o in picked]),
                    ("API /api/changes?after=", [f"/api/changes?after={rng.randrange(head)}" for _ in range(2000)]),
                ]
                for name, paths in workloads:
                    meter = CpuMeter({"server": [server.pid]})
                    meter.start()
                    n, wall, statuses, lat = asyncio.run(hammer(base, paths, args.http_seconds, args.concurrency))
                    cores = meter.stop()
                    http.append((name, n, wall, statuses, lat, cores["machine"], cores["server"]))
                    print(f"{name}: {n / wall:,.0f} requests/s", flush=True)
                server_rss = peak_rss_mb(server.pid)
            except BaseException:
                for proc in (worker, server):
                    tail = "\n".join(proc.output().splitlines()[-25:])
                    print(f"--- the last lines of {proc.log.name}:\n{tail}", file=sys.stderr)
                raise
            finally:
                for child in children:
                    child.join(5)
                    if child.is_alive():
                        child.kill()
                worker.stop()
                server.stop()

    print()
    print(f"websocket: load -> receipt by subscribers, {args.rate:.0f} releases/s for {args.seconds:.0f}s per step, "
          f"mixed filters, {args.clients} subscriber processes, one run; {load_note()} at the end")
    header = (f"{'subscribers':>11} {'sent':>6} {'changes':>7} {'deliveries':>10} {'per sub':>7} {'p50 ms':>8} "
              f"{'p99 ms':>8} {'max ms':>8} | {'commit->receipt p50':>19} {'p99':>6} | "
              f"{'cores: machine':>14} {'worker':>6} {'server':>6} {'clients':>7} {'pg+kafka':>8} "
              f"{'server RSS MB':>13}  closes")
    print(header)
    print("-" * len(header))
    for s in results:
        share = s.deliveries / max(1, s.changes * s.subscribers)
        closes = ", ".join(f"{k}: {v}" for k, v in s.closes.items()) or "-"
        print(f"{s.subscribers:>11,} {s.sent:>6,} {s.changes:>7,} {s.deliveries:>10,} {share:>7.1%} "
              f"{ms(percentile(s.total, 0.5))} {ms(percentile(s.total, 0.99))} {ms(max(s.total, default=float('nan')))}"
              f" | {ms(percentile(s.feed, 0.5)):>19} {percentile(s.feed, 0.99) * 1e3:>6.0f} | "
              f"{s.cpu['machine']:>14.2f} {s.cpu['worker']:>6.2f} {s.cpu['server']:>6.2f} "
              f"{s.cpu['subscriber clients']:>7.2f} {s.cpu['postgres + kafka']:>8.2f} "
              f"{s.server_rss:>13,.0f}  {closes}")
    held = [s.subscribers for s in results if percentile(s.total, 0.99) < LIMIT_P99]
    print(f"most subscribers held with p99 under {LIMIT_P99:.0f} s: {max(held):,}" if held else
          f"no step kept p99 under {LIMIT_P99:.0f} s")

    print()
    print(f"HTTP, {args.concurrency} concurrent httpx clients in one process, {args.http_seconds:.0f}s each, "
          f"idle stack (server peak RSS {server_rss:,.0f} MB)")
    header = (f"{'':<28} {'requests':>9} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'cores: machine':>14} "
              f"{'server':>6}  statuses")
    print(header)
    print("-" * len(header))
    for name, n, wall, statuses, lat, machine, served in http:
        print(f"{name:<28} {n:>9,} {n / wall:>11,.0f} {ms(percentile(lat, 0.5))} {ms(percentile(lat, 0.99))} "
              f"{machine:>14.2f} {served:>6.2f}  "
              f"{dict(statuses)}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
