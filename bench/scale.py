"""National scale: a million simulated releases through the real pipeline, measured as the store fills.

    .venv/bin/python bench/scale.py [--releases 1000000] [--step 100000] [--workers 2] [--samples 200]
                                    [--backfills 10] [--backfill-size 10000]
    .venv/bin/python bench/scale.py --workers-table 1,2,4 [--table-releases 30000]

On an isolated stack (a database and topics of its own on the running Kafka and PostgreSQL), with W
``ocds-live process`` workers and one ``ocds-live serve``:

0. **disk**: 5,000 releases of the same simulated mix go through the processor into a scratch database;
   their bytes in PostgreSQL and as JSON give what the run needs (the release and change topics, the
   store and its replay), which is checked against the free space before anything starts.
1. **steps**: the simulated releases (``producers.simulator``, seed 1, the Mexican federal mix) are put on
   the releases topic ``--step`` at a time, while the workers run; a step ends when the store has
   committed every offset and the relay has published every change. Per step: releases/s (from the
   first send of the step to the end; generating the releases is not in it), worker CPU per release,
   PostgreSQL bytes on disk per release, and then, with the workers idle, the p50/p99 of
   ``GET /api/records/{ocid}``, ``/api/search?q=``, ``/api/changes?after=`` and of websocket backfills
   of ``--backfill-size`` changes (bench/_probes.py) at that store size.
2. **replay**: ``ocds-live replay`` of the whole topic into a fresh database, timed, and the rebuilt
   store compared with the first (bench/_compare.py).

Targets, printed with pass/fail: releases/s of the last step at least 80% of the second's; every p99 at
the last step at most 2x its value at the first; the replay at least as fast as the first pass.

``--workers-table 1,2,4`` measures instead the throughput of the same ``--table-releases`` releases
with 1, 2 and 4 workers (each on a fresh stack, the topic loaded beforehand), with the cores used by
the workers, their relay threads, PostgreSQL, Kafka and everything else (bench/_split.py).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import psycopg2

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._common import (  # noqa: E402
    Process,
    base_settings,
    env_for,
    free_port,
    fresh_stack,
    load_note,
    wait_http,
)
from bench._compare import compare  # noqa: E402
from bench._disk import calibrate, check_disk, data_directory, kafka_bytes, scalar, table_sizes  # noqa: E402
from bench._probes import Probes, probe, search_words  # noqa: E402
from bench._split import SplitMeter  # noqa: E402
from bench.pipeline import outgoing, progress, watch_throughput  # noqa: E402
from core.settings import Settings  # noqa: E402

STALL = 180.0  # seconds without progress before the run is abandoned
OPEN = {"read_rate_limit": 1e9, "ws_max_per_client": 1_000_000}  # the probes are one client asking a lot


def releases(count: int, seed: int = 1) -> Iterator[bytes]:
    """The first ``count`` releases of the simulated stream, as the benchmarks draw it (bench._common.generate)."""
    from producers.simulator import simulate

    for event in itertools.islice(simulate(seed=seed, processes=max(1000, count)), count):
        yield orjson.dumps(event.release)


def send(settings: Settings, lines: list[bytes]) -> float:
    """Put ``lines`` on the releases topic and wait for the acks; seconds."""
    from core.kafka import ReleaseProducer

    producer = ReleaseProducer(settings, client_id="bench-scale")
    start = time.perf_counter()
    for line in lines:
        producer.send(outgoing(line))
    producer.flush(timeout=600)
    producer.close()
    return time.perf_counter() - start


CALIBRATION = 5000  # releases whose bytes in PostgreSQL tell the disk a run needs
CORES = ("machine", "workers", "relay", "projects", "postgres", "kafka", "other")


def meter(settings: Settings, workers: list[Process]) -> SplitMeter:
    return SplitMeter([w.pid for w in workers], data_directory(settings), settings.data_dir / "kafka")


# --- the steps --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    releases: int  # in the store after this step
    size: int  # releases sent in this step
    seconds: float
    load_seconds: float
    worker_ms: float  # worker CPU per release of this step
    cores: dict[str, float]
    pg_bytes: int
    probes: Probes

    @property
    def rate(self) -> float:
        return self.size / self.seconds


def drain(conn: Any, settings: Settings, total: int, workers: list[Process]) -> None:
    """Wait until the store committed ``total`` offsets and the relay published every change."""
    last, since = -1, time.monotonic()
    with conn.cursor() as cur:
        while True:
            now = progress(cur, settings.app_id)
            if now.consumed >= total and now.relayed >= now.head:
                return
            if now.consumed != last:
                last, since = now.consumed, time.monotonic()
            if time.monotonic() - since > STALL or not all(w.alive() for w in workers):
                tail = "\n".join(workers[0].output().splitlines()[-30:])
                raise SystemExit(f"the pipeline stalled at {now.consumed:,}/{total:,} messages (head {now.head}, "
                                 f"relayed {now.relayed}); worker log:\n{tail}")
            time.sleep(0.1)


def projects_settled(conn: Any, timeout: float = 600.0) -> float:
    """Seconds until no project is marked for rebuilding (-1 after ``timeout``); 0 without project builds."""
    if not scalar(conn, "SELECT count(*) FROM pg_class WHERE relname = 'project_dirty'"):
        return 0.0
    start = time.monotonic()
    while scalar(conn, "SELECT count(*) FROM project_dirty"):
        if time.monotonic() - start > timeout:
            return -1.0
        time.sleep(0.5)
    return time.monotonic() - start


def header(backfill: int) -> str:
    cols = ["releases", "rel/s", "load s", "worker ms/rel", "PG KB/rel", "records ms", "search ms", "changes ms",
            f"ws {backfill:,} ms"]
    widths = [10, 7, 7, 14, 10, 13, 13, 13, 15]
    return " ".join(f"{c:>{w}}" for c, w in zip(cols, widths, strict=True))


def row(step: Step) -> str:
    p = step.probes.as_dict()
    lat = [f"{p[k].p50 * 1e3:.0f} / {p[k].p99 * 1e3:.0f}" for k in ("records", "search", "changes", "backfill")]
    return (f"{step.releases:>10,} {step.rate:>7,.0f} {step.load_seconds:>7.1f} {step.worker_ms:>14.2f} "
            f"{step.pg_bytes / step.releases / 1e3:>10.1f} {lat[0]:>13} {lat[1]:>13} {lat[2]:>13} {lat[3]:>15}")


def run_steps(stack: Settings, args: argparse.Namespace, folder: Path) -> list[Step]:
    port = stack.port
    workers = [Process(stack, "process", log=folder / f"worker-{n}.log") for n in range(args.workers)]
    server = Process(stack, "serve", log=folder / "server.log")
    conn = psycopg2.connect(stack.database_url)
    conn.autocommit = True
    stream = releases(args.releases)
    ocids: list[str] = []
    seen: set[str] = set()
    words: list[str] = []
    steps: list[Step] = []
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        print(f"(latencies: p50 / p99 in ms; {args.samples} requests per API probe, {args.backfills} backfills; "
              f"rel/s counts from the first send of a step to its last change published)", flush=True)
        print(header(args.backfill_size), flush=True)
        total = 0
        while total < args.releases:
            lines = list(itertools.islice(stream, min(args.step, args.releases - total)))
            if not lines:
                break
            titles = []
            for line in lines:
                release = orjson.loads(line)
                if release["ocid"] not in seen:
                    seen.add(release["ocid"])
                    ocids.append(release["ocid"])
                if not words and (title := (release.get("tender") or {}).get("title")):
                    titles.append(title)
            words = words or search_words(titles, args.samples + 1)
            split = meter(stack, workers)
            split.start()
            start = time.monotonic()
            load_seconds = send(stack, lines)
            total += len(lines)
            drain(conn, stack, total, workers)
            seconds = time.monotonic() - start
            cores = split.stop()
            worker_ms = (cores["workers"] + cores["relay"] + cores["projects"]) * seconds / len(lines) * 1e3
            pg_bytes = scalar(conn, "SELECT pg_database_size(current_database())")
            head = scalar(conn, "SELECT last FROM feed_counter")
            probes = probe(port, ocids=ocids, words=words, head=head, samples=args.samples,
                           backfills=args.backfills, backfill_size=args.backfill_size, seed=len(steps))
            steps.append(Step(total, len(lines), seconds, load_seconds, worker_ms, cores, pg_bytes, probes))
            print(row(steps[-1]), flush=True)
        settled = projects_settled(conn)
        print(f"(the project builder had rebuilt every marked project {settled:.0f}s after the last step)"
              if settled >= 0 else "(the project builder had not rebuilt every marked project 600s after the "
              "last step: the projects still marked are not compared)", flush=True)
    finally:
        for w in workers:
            w.stop()
        server.stop()
        conn.close()
    return steps


# --- the replay -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_database(settings: Settings, keep_as: str | None = None) -> Iterator[str]:
    """A new empty database on the same server (dropped afterwards, or renamed ``keep_as``); its URL."""
    url = str(settings.database_url)
    name = f"ocds_bench_replay_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
    finally:
        with admin.cursor() as cur:
            if keep_as:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
                cur.execute(f'ALTER DATABASE "{name}" RENAME TO "{keep_as}"')
                print(f"kept the replayed store as database {keep_as} (drop it when done)", flush=True)
            else:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def replay(stack: Settings, target: str, folder: Path) -> tuple[float, str]:
    """``ocds-live replay`` of the stack's releases topic into ``target``: (seconds, its report line)."""
    log = folder / "replay.log"
    start = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ocds_live.cli", "replay", "--database-url", target],  # noqa: S603
                                env=env_for(stack), stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            code = proc.wait()
        except BaseException:
            proc.send_signal(signal.SIGINT)  # so that replay stops its worker (a session of its own) on the way out
            proc.wait(60)
            raise
    seconds = time.monotonic() - start
    text = log.read_text(errors="replace")
    if code:
        raise SystemExit(f"ocds-live replay failed ({code}):\n{text[-3000:]}")
    return seconds, text.strip().splitlines()[-1]


# --- targets ----------------------------------------------------------------------------------------------


def targets(steps: list[Step], first_pass: float, replay_rate: float) -> list[tuple[str, bool]]:
    """(target as measured, met) for the scale run."""
    out = []
    if len(steps) >= 2:
        second, last = steps[1].rate, steps[-1].rate
        out.append((f"releases/s of the last step {last:,.0f} >= 80% of the second's {second:,.0f} "
                    f"({last / second:.0%})", last >= 0.8 * second))
    for name, first in steps[0].probes.as_dict().items():
        final = steps[-1].probes.as_dict()[name].p99
        out.append((f"{name} p99 at {steps[-1].releases:,} {final * 1e3:.0f} ms <= 2x at {steps[0].releases:,} "
                    f"{first.p99 * 1e3:.0f} ms ({final / first.p99:.2f}x)", final <= 2 * first.p99))
    out.append((f"replay {replay_rate:,.0f} releases/s >= first pass {first_pass:,.0f}/s "
                f"({replay_rate / first_pass:.2f}x)", replay_rate >= first_pass))
    return out


def scale(args: argparse.Namespace, settings: Settings, folder: Path) -> int:
    sample = list(releases(CALIBRATION, seed=9))  # a stream of its own, with processes at every stage
    json_bytes, pg_bytes = calibrate(settings, sample)
    check_disk(settings, args.releases, json_bytes, pg_bytes, len(sample))
    with fresh_stack(settings, port=free_port(), **OPEN) as stack:
        print(f"scale: {args.releases:,} simulated releases in steps of {args.step:,}, {args.workers} workers, "
              f"1 feed server, database {urlsplit(str(stack.database_url)).path[1:]}; {load_note()}", flush=True)
        steps = run_steps(stack, args, folder)
        first_pass = steps[-1].releases / sum(s.seconds for s in steps)
        topic_bytes = kafka_bytes(stack)
        with scratch_database(stack, keep_as=args.keep) as target:
            seconds, report = replay(stack, target, folder)
            replay_rate = steps[-1].releases / seconds
            print(f"\nreplay: {seconds:.0f}s, {replay_rate:,.0f} releases/s ({report})", flush=True)
            from core.schema import load_schema

            started = time.monotonic()
            result = compare(str(stack.database_url), target, load_schema(stack.schema_dir, stack.cache_dir))
            conn = psycopg2.connect(target)
            replay_bytes = scalar(conn, "SELECT pg_database_size(current_database())")
            conn.close()
        conn = psycopg2.connect(stack.database_url)
        print("\nwhere the first store's bytes are: " + ", ".join(
            f"{name} {total / 1e9:.2f} GB (heap {heap / 1e9:.2f}, TOAST {toast / 1e9:.2f}, indexes {index / 1e9:.2f})"
            for name, total, heap, toast, index in table_sizes(conn)))
        conn.close()
    print(f"compared in {time.monotonic() - started:.0f}s: releases {result.releases[0]:,} / {result.releases[1]:,}, "
          f"records {result.records[0]:,} / {result.records[1]:,}, change events {result.changes[0]:,} / "
          f"{result.changes[1]:,} (compiled releases brought up to date in both: {result.compiled_merged:,}; versioned "
          f"releases of {result.versioned_sampled:,} sampled records; {result.projects:,} projects, "
          f"{result.projects_pending:,} still marked for rebuilding not compared): "
          + ("identical" if result.identical else "DIFFERENT: " + "; ".join(result.differences)))
    print(f"on disk at the end: PostgreSQL {steps[-1].pg_bytes / 1e9:.2f} GB (replayed store "
          f"{replay_bytes / 1e9:.2f} GB), Kafka topics {topic_bytes / 1e9:.2f} GB; first pass {first_pass:,.0f} "
          f"releases/s over {sum(s.seconds for s in steps):.0f}s; {load_note()}")
    print("cores per step (machine / workers / relay / projects / postgres / kafka / other): " + "; ".join(
        f"{s.releases // 1000:,}k " + "/".join(f"{s.cores[k]:.2f}" for k in CORES) for s in steps))
    print("\ntargets")
    checks = [*targets(steps, first_pass, replay_rate), ("replayed store identical", result.identical)]
    for text, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in checks) else 1


# --- 1, 2, 4 workers --------------------------------------------------------------------------------------


def workers_table(args: argparse.Namespace, settings: Settings, folder: Path) -> int:
    counts = [int(n) for n in args.workers_table.split(",")]
    lines = list(releases(args.table_releases))
    print(f"workers table: {len(lines):,} simulated releases, each count on a fresh stack with the topic loaded "
          f"beforehand; releases/s from the first committed batch to the last change published; {load_note()}",
          flush=True)
    title = (f"{'workers':>7} {'rel/s':>7} {'vs 1':>5} {'worker ms/rel':>13}   cores: "
             + " ".join(f"{k:>{max(6, len(k))}}" for k in CORES))
    print(title)
    print("-" * len(title), flush=True)
    base = 0.0
    threads_known = True
    for count in counts:
        with fresh_stack(settings) as stack:
            send(stack, lines)
            workers = [Process(stack, "process", log=folder / f"table-{count}-{n}.log") for n in range(count)]
            split = meter(stack, workers)
            try:
                first, _, emitted, cores = watch_throughput(stack, len(lines), workers, split)
            finally:
                for w in workers:
                    w.stop()
            threads_known = threads_known and split.threads_known
        done = len(lines) - first.consumed
        rate = done / (emitted.at - first.at)
        base = base or rate
        ms = (cores["workers"] + cores["relay"] + cores["projects"]) / rate * 1e3
        split_text = " ".join(f"{cores[k]:>{max(6, len(k))}.2f}" for k in CORES)
        print(f"{count:>7} {rate:>7,.0f} {rate / base:>4.2f}x {ms:>13.2f}   cores: {split_text}", flush=True)
    if not threads_known:
        print("(py-spy was not available or found no relay thread: the threads' CPU is counted with the workers)")
    print(f"(cores: 1.00 = one core busy the whole time, of {os_cores()}; 'other' is everything else on the "
          f"machine, including this script and other users' work; {load_note()} at the end)")
    return 0


def os_cores() -> int:
    import os

    return os.cpu_count() or 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--releases", type=int, default=1_000_000)
    parser.add_argument("--step", type=int, default=100_000, help="releases per row")
    parser.add_argument("--workers", type=int, default=2, help="`ocds-live process` workers")
    parser.add_argument("--samples", type=int, default=200, help="requests per API probe and step")
    parser.add_argument("--backfills", type=int, default=10, help="websocket backfills per step")
    parser.add_argument("--backfill-size", type=int, default=10_000, help="changes per websocket backfill")
    parser.add_argument("--workers-table", default=None, metavar="1,2,4",
                        help="instead: throughput with these numbers of workers")
    parser.add_argument("--table-releases", type=int, default=30_000, help="releases per row of the workers table")
    parser.add_argument("--keep", metavar="DATABASE",
                        help="keep the replayed store (compared identical to the first) under this database name, "
                        "to study its plans afterwards; it costs no disk beyond the run's")
    parser.add_argument("--workdir", type=Path, default=None, help="where the logs go (default: a temporary folder)")
    args = parser.parse_args()
    settings = base_settings()
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="ocds-scale-") as tmp:
        if args.workers_table:
            return workers_table(args, settings, Path(tmp))
        return scale(args, settings, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
