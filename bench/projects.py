"""What infrastructure projects cost the stream processor: throughput with and without projects, and one update
of a NAICM-sized project (292 processes), each against its baseline measured in the same run.

1. Throughput: the same simulated releases through the stream processor's batch transaction (real PostgreSQL,
   in this process, no Kafka), once with no project ids and once with 30% of the processes in 20 projects
   (``planning.budget.projectID``), alternating runs on fresh databases; the best run of each.
2. NAICM: the 302 real releases stored (one project of 292 processes); then a one-release batch to one of its
   processes (its project rebuilt) against a one-release batch to a process of no project, and what a rebuild
   spends in oc4idskit's conversion, the schema check and reading the other members.

    .venv/bin/python bench/projects.py [--releases 6000] [--runs 2]
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import SHARED, base_settings, fresh_stack  # noqa: E402
from core.merge import RecordMerger  # noqa: E402
from core.oc4ids import load_oc4ids_schema  # noqa: E402
from core.projects import Member, build, conform  # noqa: E402
from core.publishers import load_publishers  # noqa: E402
from core.schema import load_schema  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.store import reader  # noqa: E402
from core.store.connection import connect  # noqa: E402
from producers.simulator import simulate  # noqa: E402
from streams.processor import BatchProcessor, Incoming  # noqa: E402

Release = dict[str, Any]
OC4IDS = SHARED / "oc4ids" / "0.9.4"


def with_projects(releases: list[Release], share: float, projects: int, seed: int = 1) -> list[Release]:
    """The releases with ``share`` of the processes in ``projects`` projects (every release of such a process
    names it); the others name none."""
    rng = random.Random(seed)
    chosen = {o: f"P{rng.randrange(projects)}" for o in sorted({r["ocid"] for r in releases}) if rng.random() < share}
    out = []
    for release in releases:
        release = copy.deepcopy(release)
        budget = (release.get("planning") or {}).get("budget")
        if isinstance(budget, dict):
            budget.pop("projectID", None)
        if release["ocid"] in chosen:
            release.setdefault("planning", {}).setdefault("budget", {})["projectID"] = chosen[release["ocid"]]
        out.append(release)
    return out


def processor(settings: Settings) -> BatchProcessor:
    schema = load_schema(settings.schema_dir, settings.cache_dir)
    return BatchProcessor(settings, schema, load_publishers(settings.publishers_file), lambda: connect(settings))


def feed(settings: Settings, releases: list[Release], batch: int, offset: int = 0) -> tuple[float, int, float]:
    """Seconds to process ``releases`` in batches of ``batch``, the change events written, and the CPU seconds
    this process spent (PostgreSQL's are not counted)."""
    worker = processor(settings)
    changes = 0
    try:
        start = time.perf_counter()
        cpu = time.process_time()
        for i in range(0, len(releases), batch):
            msgs = [Incoming("releases", 0, offset + i + j, orjson.dumps(r), {"publisher": "bulk"})
                    for j, r in enumerate(releases[i:i + batch])]
            result = worker.process(msgs)
            assert result.rejected == 0, result
            changes += result.changes
        return time.perf_counter() - start, changes, time.process_time() - cpu
    finally:
        worker.close()


def throughput(base: Settings, releases: list[Release], runs: int, batch: int) -> None:
    plain = with_projects(releases, 0.0, 20)
    grouped = with_projects(releases, 0.3, 20)
    best: dict[str, float] = {"without projects": float("inf"), "30% in 20 projects": float("inf")}
    cpu: dict[str, float] = dict(best)
    events: dict[str, int] = {}
    for _ in range(runs):
        for name, data in (("without projects", plain), ("30% in 20 projects", grouped)):
            with fresh_stack(base) as settings:
                seconds, events[name], used = feed(settings, data, batch)
            best[name] = min(best[name], seconds)
            cpu[name] = min(cpu[name], used)
    print(f"\n1. {len(releases)} simulated releases, {len({r['ocid'] for r in releases})} processes, batches of "
          f"{batch}, best of {runs} runs each (alternating)")
    print("stream | releases/s | relative | releases per worker CPU-second | relative | change events")
    print("--- | --- | --- | --- | --- | ---")
    base_rate = len(releases) / best["without projects"]
    base_cpu = len(releases) / cpu["without projects"]
    for name, seconds in best.items():
        rate, per_cpu = len(releases) / seconds, len(releases) / cpu[name]
        print(f"{name} | {rate:,.0f} | {rate / base_rate:.2f}x | {per_cpu:,.0f} | {per_cpu / base_cpu:.2f}x | "
              f"{events[name]:,}")


def timed(function: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        out.append(time.perf_counter() - start)
    return out


def naicm(base: Settings, repeat: int) -> None:
    path = SHARED / "data" / "real" / "mx-gacm-naicm.releases.jsonl"
    releases = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    member = releases[0]["ocid"]
    loner = copy.deepcopy(releases[0])
    loner["ocid"] = loner["id"] = "no-project"
    loner["planning"]["budget"].pop("projectID")
    with fresh_stack(base) as settings:
        seconds, *_ = feed(settings, releases, 500)
        feed(settings, [loner], 1, offset=len(releases))
        offset = len(releases) + 1
        costs: dict[str, list[float]] = {"project member": [], "no project": []}
        for n in range(repeat):
            for name, ocid in (("project member", member), ("no project", "no-project")):
                release = {"ocid": ocid, "id": f"bench-{n}", "date": f"2030-01-01T00:00:{n:02d}Z", "tag": ["tender"],
                           "tender": {"id": "t", "description": f"cambio {n}"}}
                costs[name].append(feed(settings, [release], 1, offset)[0])
                offset += 1
        # what a rebuild spends, in parts
        merger = RecordMerger(load_schema(settings.schema_dir, settings.cache_dir), versioned=False)
        conn = connect(settings)
        ocids = [r[0] for r in _query(conn, "SELECT ocid FROM project_members")]
        reads = timed(lambda: [(orjson.loads(c), orjson.loads(r)) for c, r in _query(
            conn, "SELECT compiled, releases FROM project_members")], repeat)
        records = timed(lambda: reader.compiled_many(conn, ocids, merger), repeat)
        members = [Member(o, c) for o, c in reader.compiled_many(conn, ocids, merger).items()]
        conn.close()
        oc4ids = load_oc4ids_schema(OC4IDS, Path("/nonexistent"))
        conversion = timed(lambda: build("p", members, {}), repeat)
        project = build("p", members, {})
        checking = timed(lambda: conform(orjson.loads(orjson.dumps(project)), oc4ids), repeat)
        size = len(orjson.dumps(project))
    print(f"\n2. NAICM: {len(releases)} releases stored in {seconds:.2f} s ({len(ocids)} processes in one project, "
          f"{size / 1024:.0f} KB of OC4IDS); one-release batches, median of {repeat}")
    print("what | ms")
    print("--- | ---")
    member_ms = statistics.median(costs["project member"]) * 1e3
    loner_ms = statistics.median(costs["no project"]) * 1e3
    print(f"batch: 1 release of a process in no project (baseline) | {loner_ms:.1f}")
    print(f"batch: 1 release of a NAICM process (project rebuilt) | {member_ms:.1f}")
    print(f"  the project's share | {member_ms - loner_ms:.1f}")
    print(f"  of it: read the 292 members' compiled and linked releases (project_members) | "
          f"{statistics.median(reads) * 1e3:.1f}")
    print(f"  (instead of: bring the 292 records' checkpoints up to date | {statistics.median(records) * 1e3:.1f})")
    print("  of it: oc4idskit's conversion (core.projects.build, inputs copied) | "
          f"{statistics.median(conversion) * 1e3:.1f}")
    print(f"  of it: the OC4IDS schema check (core.projects.conform) | {statistics.median(checking) * 1e3:.1f}")


def _query(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql)
        rows = list(cur.fetchall())
    conn.commit()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=6000)
    parser.add_argument("--processes", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    base = base_settings().model_copy(update={"oc4ids_dir": OC4IDS if OC4IDS.is_dir() else None})
    naicm(base, args.repeat)
    releases = [e.release for e in simulate(seed=3, processes=args.processes)][:args.releases]
    throughput(base, releases, args.runs, args.batch)


if __name__ == "__main__":
    main()
