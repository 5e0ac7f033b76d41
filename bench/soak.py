"""Soak with faults: the whole pipeline under a steady stream while its processes, broker and database fail.

    .venv/bin/python bench/soak.py --duration 1800 --rate 125 --subscribers 50 --pollers 8 --kills 12

Two stream workers (``ocds-live process``, one consumer group) and two feed servers (``ocds-live serve`` on
two ports) run on a Kafka broker and a PostgreSQL of the soak's own (a temporary folder, free ports: it
restarts them, so it never touches the shared services). The simulator publishes at ``--rate`` releases/s,
``--defect-rate`` of them broken on purpose. ``--subscribers`` websocket subscribers and ``--pollers``
``GET /api/changes`` subscribers with mixed filters, detail levels and framings each resume from their own
cursor on a random feed server after every disconnection. During the stream the soak SIGKILLs workers and
feed servers ``--kills`` times at random moments (each started again 0.5-5 s later), crashes and restarts the
broker once, and shuts PostgreSQL down immediately (crash recovery) and restarts it once.

At the end, once the store has processed everything, a clean replay of the same topic into an empty
database is the ground truth (bench/_soak_truth.py): it prints releases published, accepted and rejected;
records that differ; per subscriber, changes lost, duplicated, out of order or wrong; and the recovery time
of each fault. Exit status 1 when any of those counts is not 0 (or nothing was accepted).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._common import base_settings, load_note, wait_http  # noqa: E402
from bench._soak_faults import Fault, Produced, Watch, produce, schedule  # noqa: E402
from bench._soak_stack import Stack  # noqa: E402
from bench._soak_subscribers import Subscribers, plan  # noqa: E402
from bench._soak_truth import StoreDiff, SubscriberDiff, compare_stores, compare_subscribers  # noqa: E402
from core.profiles import Profiles  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.store import reader  # noqa: E402
from core.store.connection import connect  # noqa: E402


@dataclass
class Params:
    duration: float = 1800.0
    rate: float = 125.0
    subscribers: int = 50
    pollers: int = 8
    kills: int = 12
    defect_rate: float = 0.02
    seed: int = 14
    keep: bool = False


@dataclass
class SoakResult:
    params: Params
    produced: Produced
    seconds: float
    store: StoreDiff
    subscribers: list[SubscriberDiff]
    faults: list[Fault]
    unplanned: list[str]
    head: int
    drain_seconds: float
    replay_seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> int:
        """Every count that must be 0, summed (plus one when nothing was accepted or a fault never recovered)."""
        return (self.store.failures + sum(s.failures for s in self.subscribers)
                + int(self.store.accepted == 0 or self.produced.published == 0)
                + sum(f.recovered is None for f in self.faults))


def _rows(settings: Settings, sql: str, *params: object) -> list[tuple[Any, ...]] | None:
    """The rows of one query on the soak's store; None while the store is away (PostgreSQL restarts)."""
    try:
        conn = psycopg2.connect(settings.database_url, connect_timeout=2)
    except psycopg2.Error:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    except psycopg2.Error:
        return None
    finally:
        conn.close()


def _processed(settings: Settings) -> dict[int, int] | None:
    rows = _rows(settings, "SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = %s "
                 "AND topic = %s", settings.app_id, settings.releases_topic)
    return None if rows is None else {int(p): int(o) for p, o in rows}


def _head(settings: Settings) -> int:
    conn = connect(settings)
    try:
        return reader.head(conn)
    finally:
        conn.close()


def _marked_projects(settings: Settings) -> int | None:
    """Projects the stream marked that the project builder has not rebuilt since (None: the store is away)."""
    rows = _rows(settings, "SELECT count(*) FROM project_dirty")
    return None if rows is None else int(rows[0][0])


def _caught_up(settings: Settings, acked: dict[int, int], timeout: float) -> float:
    """Wait until the store has processed every acknowledged offset and the project builder has rebuilt every
    marked project (as ``ocds-live replay`` waits for its store); the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        done = _processed(settings)
        if done is not None and all(done.get(p, 0) >= end for p, end in acked.items()) \
                and _marked_projects(settings) == 0:
            return time.monotonic() - started
        time.sleep(0.5)
    raise SystemExit(f"the store did not catch up within {timeout:.0f}s: processed {_processed(settings)}, "
                     f"acknowledged {acked}, projects still marked {_marked_projects(settings)}")


def _compiler(settings: Settings) -> Profiles:
    return Profiles.from_settings(settings)


def run_soak(params: Params, base: Settings | None = None, say: Callable[[str], None] = print) -> SoakResult:
    """Run the soak; the verdict, with every count (see the module's docstring)."""
    from consumers.replay import replay
    from producers.simulator import simulate

    echo = say
    base = base or base_settings()
    rng = random.Random(params.seed)
    processes = max(200, int(params.rate * params.duration / 4))
    sample = [e.release for e in itertools.islice(simulate(seed=params.seed, processes=processes), 3000)]
    specs = plan(params.subscribers, params.pollers, sample, params.duration, params.seed)
    stack = Stack(base, Path(tempfile.mkdtemp(prefix="ocds-soak-")))
    notes = [load_note()]
    try:
        echo(f"soak: own Kafka at {stack.settings.kafka_bootstrap_servers}, own PostgreSQL under {stack.root}")
        stack.up(base)
        workers = [stack.worker(n) for n in (1, 2)]
        feeds = [stack.feed_server(n) for n in (1, 2)]
        for child in workers + feeds:
            child.start()
        for child in feeds:
            wait_http(f"{child.url}/healthz", 120)
        subs = Subscribers(specs, lambda: [f.url for f in feeds], params.seed)
        watch = Watch(stack, workers + feeds, subs, lambda: _processed(stack.settings))
        produced = Produced()
        faults = schedule(params.duration, params.kills, rng)
        echo(f"soak: {params.duration:.0f}s at {params.rate:g} releases/s, {len(specs)} subscribers, "
             f"faults at {', '.join(f'{f.at:.0f}s {f.kind}' for f in faults)}")

        async def main() -> tuple[int, float]:
            t0 = time.monotonic()
            loop = asyncio.get_running_loop()
            running = asyncio.ensure_future(subs.run())
            threading.Thread(target=watch.run, name="soak-watch", daemon=True).start()
            producer = loop.run_in_executor(None, produce, stack, params.rate, params.duration, params.seed,
                                            processes, params.defect_rate, produced, t0)

            def inject_all() -> None:
                for fault in faults:
                    time.sleep(max(0.0, t0 + fault.at - time.monotonic()))
                    echo(f"  {time.monotonic() - t0:6.0f}s {fault.kind} fault ({produced.published} published)")
                    try:
                        watch.inject(fault, produced.acked, rng)
                    except Exception as exc:  # noqa: BLE001 - say it now, count it, and go on with the others
                        echo(f"  the {fault.kind} fault could not be repaired: {exc!r}")
                        notes.append(f"{fault.kind} fault at {fault.at:.0f}s: {exc!r}")

            await asyncio.gather(producer, loop.run_in_executor(None, inject_all))
            drain = await asyncio.to_thread(_caught_up, stack.settings, produced.acked, max(600, params.duration / 2))
            deadline = time.monotonic() + 120
            while watch.pending and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            watch.stopped.set()
            for worker in workers:
                worker.stop()
            head = _head(stack.settings)
            subs.finish(head)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(running), 180)
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            return head, drain

        started = time.monotonic()
        head, drain = asyncio.run(main())
        seconds = time.monotonic() - started
        for child in feeds:
            child.stop()
        cut = [f"{s.spec.name}: {c}" for s in subs.subs for c in s.cut_short]
        if cut:
            notes.append(f"{len(cut)} pull answers ended inside their body (asked again): {'; '.join(cut[:10])}")
        undone = [s.spec.name for s in subs.subs if not s.done]
        if undone:
            notes.append(f"subscribers that did not reach the final head: {', '.join(undone)}")
        echo(f"soak: stream over, store caught up {drain:.1f}s after it; replaying the topic into an empty store")
        replayed = replay(stack.settings, database_url=stack.truth_url, timeout=3600)
        echo(f"soak: {replayed.report()}; comparing")
        compiler = _compiler(stack.settings)
        store = compare_stores(stack.settings.database_url or "", stack.truth_url, compiler)
        per_sub = compare_subscribers(stack.settings.database_url or "", subs.subs, head)
        for sub in subs.subs:
            notes += [f"{sub.spec.name} refused: {r}" for r in sub.refusals[:3]]
        return SoakResult(params, produced, seconds, store, per_sub, faults, watch.unplanned, head, drain,
                          replayed.seconds, notes)
    finally:
        stack.down(keep=params.keep)


def table(result: SoakResult) -> str:
    """The soak's final table."""
    p, s, pr = result.params, result.store, result.produced
    broken = ", ".join(f"{kind} {n}" for kind, n in sorted(pr.defective.items()))
    lines = [
        f"soak: {p.duration:.0f}s at {p.rate:g} releases/s (seed {p.seed}), 2 workers, 2 feed servers, "
        f"{len(result.subscribers)} subscribers; ran {result.seconds:.0f}s",
        "",
        "| releases | count |", "|---|---|",
        f"| published (acknowledged by Kafka) | {pr.published:,} |",
        f"| broken on purpose | {sum(pr.defective.values()):,} ({broken}) |",
        f"| batches sent again (broker down) | {pr.resent_batches} |",
        f"| accepted: store / replay | {s.accepted:,} / {s.truth_accepted:,} |",
        f"| rejected: store / replay | {s.rejected:,} / {s.truth_rejected:,} |",
        f"| change log head | {result.head:,} |",
        "",
        "| store vs clean replay | differ |", "|---|---|",
        f"| releases missing / extra | {s.releases_missing} / {s.releases_extra} |",
        f"| rejected messages differing | {s.rejected_differ} |",
        f"| records that differ (of {s.records_compared:,}; versioned compared: {s.versioned_compared}) | "
        f"{s.records_differ} |",
        f"| projects that differ | {s.projects_differ} |",
        f"| change events missing / duplicated | {s.changes_missing} / {s.changes_duplicated} |",
        f"| ocids whose changes came in another order | {s.ocids_reordered} |",
        f"| gaps in the change log's cursors | {s.cursor_gaps} |",
        "",
        "| subscriber | filter | expected | received | lost | dup | disorder | wrong | refused | conns | moved |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {d.name} | {d.what} | {d.expected:,} | {d.received:,} | {d.lost} | {d.duplicated} | {d.disordered} "
              f"| {d.wrong} | {d.refusals} | {d.connections} | {d.resumed_elsewhere} |" for d in result.subscribers]
    total = {k: sum(getattr(d, k) for d in result.subscribers)
             for k in ("expected", "received", "lost", "duplicated", "disordered", "wrong", "refusals")}
    lines.append(f"| all | | {total['expected']:,} | {total['received']:,} | {total['lost']} | {total['duplicated']} "
                 f"| {total['disordered']} | {total['wrong']} | {total['refusals']} | | |")
    lines += ["", "| fault | at | target | recovered after |", "|---|---|---|---|"]
    lines += [f"| {f.kind} | {f.at:.0f}s | {f.target} | "
              f"{'NOT RECOVERED' if f.recovered is None else f'{f.recovered:.1f}s'} |" for f in result.faults]
    lines += ["", f"store caught up {result.drain_seconds:.1f}s after the stream ended; replay took "
              f"{result.replay_seconds:.1f}s"]
    if result.unplanned:
        lines.append(f"processes that exited by themselves (restarted): {'; '.join(result.unplanned)}")
    lines += result.notes + list(s.examples)
    lines.append(f"VERDICT: {'PASS' if result.failures == 0 else f'FAIL ({result.failures})'}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=Params.duration, help="seconds of stream (default 1800)")
    parser.add_argument("--rate", type=float, default=Params.rate, help="releases per second (default 125)")
    parser.add_argument("--subscribers", type=int, default=Params.subscribers, help="websocket subscribers")
    parser.add_argument("--pollers", type=int, default=Params.pollers, help="GET /api/changes subscribers")
    parser.add_argument("--kills", type=int, default=Params.kills, help="SIGKILLs of workers and feed servers")
    parser.add_argument("--defect-rate", type=float, default=Params.defect_rate, help="share of broken releases")
    parser.add_argument("--seed", type=int, default=Params.seed)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, data)")
    args = parser.parse_args()
    params = Params(args.duration, args.rate, args.subscribers, args.pollers, args.kills, args.defect_rate,
                    args.seed, args.keep)
    result = run_soak(params, say=lambda text: print(text, flush=True))
    print(table(result), flush=True)
    return 0 if result.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
