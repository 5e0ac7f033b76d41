"""End-to-end pipeline throughput, latency, memory and flatness, next to two baselines measured in the same run.

    .venv/bin/python bench/pipeline.py [--releases N=100000] [--processes M] [--workers W=1]
                                       [--ocdskit-releases 10000] [--naive-releases 5000]
                                       [--latency-rate R] [--latency-seconds 15] [--profile DIR]

Generates N simulated releases (``producers.simulator``, seed 1, the first N of a date-ordered stream
of M processes, 30% of them in 20 infrastructure projects), then, each on an isolated stack (a fresh database
and topics of its own):

1. **throughput**: loads the N releases onto the releases topic (timed on its own), starts W
   ``ocds-live process`` workers and polls the store every 50 ms: releases/s validated + merged + stored
   (consumed offsets committed in the store, which happens in the same transaction as the writes)
   and + emitted (the relay has published every change to the changes topic), counted from the first
   committed batch to the last, so the workers' start-up is not in it. Peak RSS: the workers' VmHWM.
2. **latency**: with the workers idle, sends fresh releases (seed 2) at a fixed rate (default: half
   the throughput just measured) and reports, per release that made a change, the time from the send
   (the ``produced-at`` header, taken in this process) to the change row becoming visible to a reader
   polling every 20 ms (commit), and to ``changes.created_at`` (the start of the writing transaction).
3. **flatness**: the processor (``BatchProcessor.process``, the very code the workers run, on the same
   store) is handed the releases of three ~505-release processes one at a time; the cost of release 1
   is compared with that of releases 500±5 (median), and with the mean of releases 471..500 (which
   includes the compiled release's checkpoint writes). ocdsmerge's full re-merge of releases 1..n is
   timed at the same points.

Baselines on the same releases: ``ocdskit compile --package --versioned`` (OCP's batch tool: compiles
records and versioned releases, no validation, storage or emission) on the first ``--ocdskit-releases``,
and a naive loop that re-merges all of a process's releases so far on each arrival with ocdsmerge
(``create_compiled_release`` + ``create_versioned_release``) on the first ``--naive-releases``.
4. **projects**: unless ``--no-projects-baseline``, the throughput run again on the same stream with no process
   in a project (the simulator's ``project_share=0``: the same releases without ``planning.budget.projectID``),
   and how long after the last release was stored the project builder had built every project.

``--profile DIR`` records the first worker with py-spy during the throughput phase and prints the
functions that take the most time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg2

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._common import (  # noqa: E402
    SCHEMA_DIR,
    CpuMeter,
    Process,
    base_settings,
    fresh_stack,
    generate,
    load_note,
    peak_rss_mb,
    percentile,
    service_pids,
)
from core.settings import Settings  # noqa: E402

PUBLISHER = "simulator"
POLL = 0.05
STALL = 120.0  # seconds without progress before the run is abandoned
PROJECTS = 20  # the stream's processes are 30% in 20 infrastructure projects (issue 11's benchmark)


# --- loading ----------------------------------------------------------------------------------------------


def outgoing(line: bytes) -> Any:
    from core.kafka import OutgoingRelease

    release = orjson.loads(line)
    return OutgoingRelease(release["ocid"], release["id"], line, PUBLISHER, "bench")


def load_topic(settings: Settings, path: Path) -> tuple[int, float]:
    """Send every line of ``path`` to the releases topic and wait for the acks; (count, seconds)."""
    from core.kafka import ReleaseProducer

    producer = ReleaseProducer(settings, client_id="bench-pipeline")
    start = time.perf_counter()
    count = 0
    with path.open("rb") as f:
        for line in f:
            producer.send(outgoing(line.rstrip(b"\n")))
            count += 1
    producer.flush(timeout=600)
    seconds = time.perf_counter() - start
    producer.close()
    return count, seconds


# --- watching the store -----------------------------------------------------------------------------------


@dataclass
class Progress:
    """The store's counters at one moment."""

    at: float
    consumed: int  # sum of committed next offsets of the group
    head: int  # last change cursor
    relayed: int  # last cursor the relay published


def scalar(cur: Any, sql: str, *params: object) -> int:
    cur.execute(sql, params)
    row = cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def progress(cur: Any, group: str) -> Progress:
    consumed = scalar(cur, "SELECT sum(next_offset) FROM consumer_offsets WHERE consumer_group = %s", group)
    head = scalar(cur, "SELECT last FROM feed_counter")
    relayed = scalar(cur, "SELECT last FROM relay_progress WHERE name = 'changes'")
    return Progress(time.time(), consumed, head, relayed)


def watch_throughput(settings: Settings, total: int, workers: list[Process],
                     meter: CpuMeter) -> tuple[Progress, Progress, Progress, dict[str, float]]:
    """Poll until all ``total`` messages are committed and relayed: (first seen, stored, emitted, cores used)."""
    conn = psycopg2.connect(settings.database_url)
    conn.autocommit = True
    first: Progress | None = None
    stored: Progress | None = None
    last_change = time.time()
    last_consumed = 0
    try:
        with conn.cursor() as cur:
            while True:
                now = progress(cur, settings.app_id)
                if now.consumed != last_consumed:
                    last_consumed, last_change = now.consumed, now.at
                if first is None and now.consumed > 0:
                    first = now
                    meter.start()
                if stored is None and now.consumed >= total:
                    stored = now
                    cores = meter.stop()
                if stored is not None and now.relayed >= now.head:
                    assert first is not None
                    return first, stored, now, cores
                if now.at - last_change > STALL or not all(w.alive() for w in workers):
                    tail = "\n".join(workers[0].output().splitlines()[-30:])
                    raise SystemExit(f"the pipeline stalled at {now.consumed:,}/{total:,} messages "
                                     f"(head {now.head}, relayed {now.relayed}); worker log:\n{tail}")
                time.sleep(POLL)
    finally:
        conn.close()


def projects_settled(settings: Settings, since: float, timeout: float = 900.0) -> tuple[float, int, int]:
    """Wait until the project builder has built every marked project: (seconds after ``since``, projects,
    project.updated events)."""
    conn = psycopg2.connect(settings.database_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            deadline = time.time() + timeout
            while scalar(cur, "SELECT count(*) FROM project_dirty") and time.time() < deadline:
                time.sleep(POLL)
            settled = time.time() - since
            return (settled, scalar(cur, "SELECT count(*) FROM projects"),
                    scalar(cur, "SELECT count(*) FROM changes WHERE kind = 'project.updated'"))
    finally:
        conn.close()


def baseline_without_projects(settings: Settings, folder: Path, releases: int, processes: int | None,
                              workers: int) -> tuple[int, float, float]:
    """The same simulated stream with no process in a project, through the same workers on a fresh stack:
    (messages after the first batch, seconds, worker cores)."""
    plain = folder / "no-projects.jsonl"
    generate(plain, releases, processes=processes, project_share=0.0)
    with fresh_stack(settings) as stack:
        loaded, _ = load_topic(stack, plain)
        procs = [Process(stack, "process", log=folder / f"plain-worker-{n}.log") for n in range(workers)]
        meter = CpuMeter({"workers": [w.pid for w in procs], "postgres + kafka": service_pids})
        try:
            first, stored, _, cores = watch_throughput(stack, loaded, procs, meter)
        finally:
            for w in procs:
                w.stop()
    return loaded - first.consumed, stored.at - first.at, cores["workers"]


# --- latency at a fixed rate ------------------------------------------------------------------------------


def latency_run(settings: Settings, lines: list[bytes], rate: float) -> tuple[list[float], list[float], int]:
    """Send ``lines`` at ``rate``/s; latencies (s) to visible commit and to transaction start, and changes seen."""
    from core.kafka import ReleaseProducer

    sent: dict[str, float] = {}
    done = threading.Event()

    def sender() -> None:
        producer = ReleaseProducer(settings, client_id="bench-latency")
        start = time.monotonic()
        for n, line in enumerate(lines):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            item = outgoing(line)
            sent[item.release_id] = time.time()  # what OutgoingRelease.headers() writes as produced-at
            producer.send(item)
        producer.flush(timeout=60)
        producer.close()
        done.set()

    conn = psycopg2.connect(settings.database_url)
    conn.autocommit = True
    visible: list[float] = []
    started: list[float] = []
    seen = 0
    with conn.cursor() as cur:
        last = scalar(cur, "SELECT max(cursor) FROM changes")
        thread = threading.Thread(target=sender, name="bench-sender", daemon=True)
        thread.start()
        quiet_since: float | None = None
        while True:
            cur.execute("SELECT cursor, release_id, extract(epoch FROM created_at) FROM changes WHERE cursor > %s "
                        "ORDER BY cursor", (last,))
            rows = cur.fetchall()
            now = time.time()
            for cursor, release_id, created in rows:
                last = cursor
                seen += 1
                if release_id in sent:
                    visible.append(now - sent[release_id])
                    started.append(float(created) - sent[release_id])
            if done.is_set():
                quiet_since = quiet_since or now
                if rows:
                    quiet_since = now
                elif now - quiet_since > 3.0:
                    break
            time.sleep(0.02)
        thread.join()
    conn.close()
    return visible, started, seen


# --- flatness: the processor on one growing process -------------------------------------------------------


def long_processes(count: int, releases: int) -> dict[str, list[bytes]]:
    from producers.simulator import simulate

    by_ocid: dict[str, list[bytes]] = defaultdict(list)
    for event in simulate(seed=3, processes=count, long_process_rate=1.0, long_process_releases=releases):
        by_ocid[event.release["ocid"]].append(orjson.dumps(event.release))
    return dict(by_ocid)


@dataclass
class Flatness:
    releases: int = 0
    ours: dict[int, float] = field(default_factory=dict)  # position -> median seconds
    mean: dict[int, float] = field(default_factory=dict)  # position -> mean seconds of the 30 releases up to it
    naive: dict[int, float] = field(default_factory=dict)  # position -> seconds (ocdsmerge re-merge 1..n)


def flatness(settings: Settings, processes: int, points: tuple[int, ...], window: int = 5) -> Flatness:
    """Per-release cost of ``BatchProcessor.process`` at given positions of long processes (one per batch)."""
    import ocdsmerge

    from core.publishers import load_publishers
    from core.schema import load_schema
    from core.store.connection import connect
    from streams.processor import BatchProcessor, Incoming

    schema = load_schema(settings.schema_dir, settings.cache_dir)
    processor = BatchProcessor(settings, schema, load_publishers(settings.publishers_file), lambda: connect(settings))
    reference = ocdsmerge.Merger(schema=schema.release)
    headers = {"publisher": PUBLISHER}
    topic = f"{settings.releases_topic}.direct"
    offset = 0

    def run(value: bytes) -> float:
        nonlocal offset
        start = time.perf_counter()
        result = processor.process([Incoming(topic, 0, offset, value, headers)])
        offset += 1
        if result.accepted != 1 and not result.duplicates:
            raise SystemExit(f"the processor did not accept a long-process release: {result}")
        return time.perf_counter() - start

    groups = long_processes(processes + 1, max(points))
    warm, *measured = groups.values()
    run(warm[0])  # the connection and first-use costs
    costs: dict[int, list[float]] = defaultdict(list)
    by_position: dict[int, list[float]] = defaultdict(list)
    out = Flatness(releases=min(len(v) for v in measured))
    try:
        for values in measured:
            for position, value in enumerate(values, start=1):
                cost = run(value)
                by_position[position].append(cost)
                if any(abs(position - p) <= (window if p > 1 else 0) for p in points):
                    costs[min(points, key=lambda p: abs(p - position))].append(cost)
        releases = [orjson.loads(v) for v in measured[0]]
        for point in points:
            out.ours[point] = statistics.median(costs[point])
            # the mean over a stretch that holds checkpoint writes too (one every ~S/r releases)
            out.mean[point] = statistics.fmean(c for n in range(max(1, point - 29), point + 1) for c in by_position[n])
            start = time.perf_counter()
            reference.create_compiled_release(releases[:point])
            reference.create_versioned_release(releases[:point])
            out.naive[point] = time.perf_counter() - start
    finally:
        processor.close()
    return out


# --- baselines --------------------------------------------------------------------------------------------


def head_lines(path: Path, count: int) -> list[bytes]:
    out: list[bytes] = []
    with path.open("rb") as f:
        for line in f:
            if len(out) >= count:
                break
            out.append(line.rstrip(b"\n"))
    return out


def ocdskit(path: Path, count: int, folder: Path) -> tuple[int, float, float]:
    """``ocdskit compile --package --versioned`` on the first ``count`` releases: (count, seconds, peak RSS MB)."""
    subset = folder / "ocdskit.jsonl"
    lines = head_lines(path, count)
    subset.write_bytes(b"\n".join(lines) + b"\n")
    exe = Path(sys.executable).with_name("ocdskit")
    if not exe.exists():
        raise SystemExit(f"{exe} is missing: .venv/bin/pip install ocdskit")
    with subset.open("rb") as stdin:
        start = time.perf_counter()
        proc = subprocess.Popen([str(exe), "compile", "--package", "--versioned",  # noqa: S603
                                 "--schema", str(SCHEMA_DIR / "release-schema.json")],
                                stdin=stdin, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"ocdskit failed with exit code {proc.returncode}")
    return len(lines), seconds, usage.ru_maxrss / 1024


def naive(path: Path, count: int, settings: Settings) -> tuple[int, float]:
    """Re-merge all of a process's releases so far on each arrival (ocdsmerge): (count, seconds)."""
    import ocdsmerge

    from core.schema import load_schema

    merger = ocdsmerge.Merger(schema=load_schema(settings.schema_dir, settings.cache_dir).release)
    releases = [orjson.loads(line) for line in head_lines(path, count)]
    history: dict[str, list[Any]] = defaultdict(list)
    start = time.perf_counter()
    for release in releases:
        seen = history[release["ocid"]]
        seen.append(release)
        merger.create_compiled_release(seen)
        merger.create_versioned_release(seen)
    return len(releases), time.perf_counter() - start


# --- profiling --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def profiled(pid: int, folder: Path | None) -> Iterator[Path | None]:
    """py-spy records ``pid`` (collapsed stacks) while the block runs, when a folder is given."""
    if folder is None:
        yield None
        return
    exe = Path(sys.executable).with_name("py-spy")
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"worker-{pid}.txt"
    spy = subprocess.Popen([str(exe), "record", "--pid", str(pid), "--format", "raw", "--rate", "50", "--gil",  # noqa: S603
                            "--output", str(out), "--nonblocking"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        yield out
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(60)
        except subprocess.TimeoutExpired:
            spy.kill()


def hot_functions(raw: Path, top: int = 20) -> list[tuple[str, float, float]]:
    """(function, inclusive share, own share) of the busy samples (idle waits excluded), by function."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    idle = ("wait (threading.py", "select (selectors.py", "_worker (concurrent/futures", "poll (selectors.py",
            "_run_once (asyncio", "sleep (", "epoll")
    generic = ("<module>", "_bootstrap", "run (threading.py", "_worker (concurrent", "run (concurrent",
               "process-", "Thread-", "run_forever", "_run_once", "_run (asyncio", "main (", "execute_from")
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        if any(i in frames[-1] for i in idle):
            continue
        count = int(count_text)
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return []
    ranked = [(name, n / total, own[name] / total) for name, n in inclusive.most_common()
              if not any(name.startswith(g) or g in name for g in generic)]
    return ranked[:top]


# --- the run ----------------------------------------------------------------------------------------------


def fmt_rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>11,.0f}" if seconds > 0 else f"{'-':>11}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--releases", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=None, help="simulated processes (default max(1000, N))")
    parser.add_argument("--workers", type=int, default=1, help="`ocds-live process` workers")
    parser.add_argument("--ocdskit-releases", type=int, default=10_000, help="ocdskit baseline subset")
    parser.add_argument("--naive-releases", type=int, default=5_000, help="naive re-merge baseline subset")
    parser.add_argument("--latency-rate", type=float, default=None, help="releases/s (default: half the throughput)")
    parser.add_argument("--latency-seconds", type=float, default=15.0)
    parser.add_argument("--long-processes", type=int, default=3, help="~505-release processes for the 500th vs 1st")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy the first worker; raw stacks go here")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--no-projects-baseline", action="store_true",
                        help="skip the run of the same stream without infrastructure projects")
    args = parser.parse_args()
    settings = base_settings()

    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="ocds-bench-") as tmp:
        folder = Path(tmp)
        jsonl = folder / "releases.jsonl"
        t0 = time.perf_counter()
        count, size = generate(jsonl, args.releases, processes=args.processes, projects=PROJECTS)
        print(f"generated {count:,} simulated releases, {size / 1e6:.0f} MB ({size / count / 1e3:.1f} KB each) "
              f"in {time.perf_counter() - t0:.0f}s", flush=True)

        kit = ocdskit(jsonl, min(count, args.ocdskit_releases), folder)
        print(f"ocdskit: {kit[0]:,} releases in {kit[1]:.1f}s", flush=True)
        slow = naive(jsonl, min(count, args.naive_releases), settings)
        print(f"naive re-merge: {slow[0]:,} releases in {slow[1]:.1f}s", flush=True)

        with fresh_stack(settings) as stack:
            loaded, load_seconds = load_topic(stack, jsonl)
            print(f"loaded {loaded:,} releases onto {stack.releases_topic} in {load_seconds:.1f}s "
                  f"({loaded / load_seconds:,.0f}/s)", flush=True)
            workers = [Process(stack, "process", log=folder / f"worker-{n}.log") for n in range(args.workers)]
            meter = CpuMeter({"workers": [w.pid for w in workers], "postgres + kafka": service_pids})
            try:
                with profiled(workers[0].pid, args.profile) as raw:
                    first, stored, emitted, cores = watch_throughput(stack, loaded, workers, meter)
                span = stored.at - first.at
                emit_span = emitted.at - first.at
                done = loaded - first.consumed
                rss = [peak_rss_mb(w.pid) for w in workers]
                print(f"throughput: {done:,} messages after the first batch in {span:.1f}s; "
                      f"{emitted.head:,} changes", flush=True)
                settled = projects_settled(stack, stored.at)
                print(f"projects: {settled[1]} built, {settled[2]:,} project.updated events, the last "
                      f"{settled[0]:.1f}s after the last release was stored", flush=True)

                rate = args.latency_rate or max(50.0, round(done / span / 2, -1))
                fresh = folder / "latency.jsonl"
                generate(fresh, int(rate * args.latency_seconds), seed=2)
                lines = head_lines(fresh, int(rate * args.latency_seconds))
                visible, started, seen = latency_run(stack, lines, rate)
                rss = [max(a, peak_rss_mb(w.pid)) for a, w in zip(rss, workers, strict=True)]
            finally:
                for w in workers:
                    w.stop()
            points = (1, 100, 500)
            flat = flatness(stack, args.long_processes, points)
        plain = None if args.no_projects_baseline else baseline_without_projects(
            settings, folder, args.releases, args.processes, args.workers)

        print()
        print(f"pipeline, {count:,} simulated releases ({size / count / 1e3:.1f} KB each), {args.workers} "
              f"worker(s), {os.cpu_count()} cores, one run; throughput counted from the first committed batch "
              f"({first.consumed:,} messages) to the last")
        title = f"{'':<52} {'releases':>9} {'seconds':>8} {'releases/s':>11} {'x ocdskit':>9} {'peak RSS MB':>11}"
        print(title)
        print("-" * len(title))
        kit_rate = kit[0] / kit[1]

        def line(name: str, n: int, s: float, rss_mb: float | None) -> None:
            ratio = n / s / kit_rate
            mem = f"{rss_mb:>11,.0f}" if rss_mb is not None else f"{'-':>11}"
            print(f"{name:<52} {n:>9,} {s:>8.1f} {fmt_rate(n, s)} {ratio:>8.2f}x {mem}")

        line("ocds-live: validated + merged + stored", done, span, sum(rss))
        per_core = done / (cores["workers"] * span) if cores["workers"] else float("nan")
        line("ocds-live: ... + emitted to the changes topic", done, emit_span, sum(rss))
        line(f"ocdskit compile --package --versioned ({'subset' if kit[0] < count else 'all'})", kit[0], kit[1],
             kit[2])
        line(f"naive ocdsmerge re-merge per arrival ({'subset' if slow[0] < count else 'all'})", slow[0], slow[1],
             None)
        print(f"(loading the topic beforehand, not in the above: {loaded / load_seconds:,.0f} releases/s; worker "
              f"peak RSS {', '.join(f'{r:,.0f}' for r in rss)} MB)")
        others = cores["machine"] - cores["workers"] - cores["postgres + kafka"]
        print(f"(cores busy while the workers stored: machine {cores['machine']:.2f}, "
              f"workers {cores['workers']:.2f}, postgres + kafka {cores['postgres + kafka']:.2f}, everything else "
              f"on the machine {others:.2f}; {load_note()} at the end)")
        print(f"(per CPU-second of the workers, which does not depend on what else the machine runs: "
              f"{per_core:,.0f} releases)")
        print(f"(infrastructure projects: {settled[1]} built from the stream's processes, {settled[2]:,} "
              f"project.updated events; the project builder had built every marked project {settled[0]:.1f}s "
              "after the last release was stored)")
        if plain is not None:
            plain_rate, rate_now = plain[0] / plain[1], done / span
            plain_core = plain[0] / (plain[2] * plain[1]) if plain[2] else float("nan")
            print()
            print("infrastructure projects: the same stream (same seed, same releases) with 30% of its processes in "
                  "20 projects and with none, same workers, one run each")
            header = f"{'':<44} {'releases/s':>11} {'relative':>9} {'per worker CPU-s':>17} {'relative':>9}"
            print(header)
            print("-" * len(header))
            print(f"{'without projects':<44} {plain_rate:>11,.0f} {1:>8.2f}x {plain_core:>17,.0f} {1:>8.2f}x")
            print(f"{'30% of processes in 20 projects':<44} {rate_now:>11,.0f} {rate_now / plain_rate:>8.2f}x "
                  f"{per_core:>17,.0f} {per_core / plain_core:>8.2f}x   (target >= 0.85x)")

        print()
        print(f"latency, send (produced-at) -> change committed, {len(lines):,} fresh releases at {rate:,.0f}/s "
              f"({len(visible):,} made changes)")
        header = f"{'':<52} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        print(header)
        print("-" * len(header))
        for name, values in (("visible to a reader (polled every 20 ms)", visible),
                             ("changes.created_at (the writing transaction's start)", started)):
            print(f"{name:<52} {percentile(values, 0.5) * 1e3:>8.0f} {percentile(values, 0.99) * 1e3:>8.0f} "
                  f"{max(values, default=float('nan')) * 1e3:>8.0f}")
        if seen != len(visible):
            print(f"(note: {seen - len(visible)} changes seen that this run did not send)")

        print()
        print(f"flatness: BatchProcessor.process, one release per batch, {args.long_processes} processes of "
              f"{flat.releases} releases (median of positions n±5; mean of positions n-29..n, which includes "
              "the checkpoint writes), ocdsmerge re-merge of 1..n (one call)")
        header = (f"{'release n':>9} {'median ms':>10} {'vs 1st':>7} {'mean ms':>8} {'vs 1st':>7} "
                  f"{'ocdsmerge re-merge ms':>22} {'vs 1st':>7}")
        print(header)
        print("-" * len(header))
        for point in points:
            ours, mean, ref = flat.ours[point], flat.mean[point], flat.naive[point]
            print(f"{point:>9} {ours * 1e3:>10.1f} {ours / flat.ours[1]:>6.2f}x {mean * 1e3:>8.1f} "
                  f"{mean / flat.mean[1]:>6.2f}x {ref * 1e3:>22.1f} {ref / flat.naive[1]:>6.1f}x")

        if raw is not None and raw.exists():
            print()
            print(f"py-spy, worker {workers[0].pid}, throughput phase (raw stacks: {raw}); samples holding the GIL")
            print(f"{'inclusive':>9} {'own':>6}  function")
            for name, incl, own in hot_functions(raw):
                print(f"{incl:>9.0%} {own:>6.0%}  {name[:110]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
