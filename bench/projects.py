"""What an update of a NAICM-sized infrastructure project (292 processes) costs, against a baseline measured in
the same run. (Throughput with and without projects: ``bench/pipeline.py``, which runs the same stream twice.)

The 302 real NAICM releases stored (one project of 292 processes); then, repeatedly, a one-release batch to one
of its processes (the stream processor writes the member's snapshot and marks the project) against a
one-release batch to a process of no project, and one round of the project builder rebuilding NAICM off the
hot path, with what a rebuild spends reading the members, in oc4idskit's conversion and in the schema check.

    .venv/bin/python bench/projects.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import SHARED, base_settings, fresh_stack  # noqa: E402
from core.oc4ids import load_oc4ids_schema  # noqa: E402
from core.projects import Member, build, conform  # noqa: E402
from core.publishers import load_publishers  # noqa: E402
from core.schema import load_schema  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.store import projects, reader  # noqa: E402
from core.store.connection import connect  # noqa: E402
from streams.processor import BatchProcessor, Incoming  # noqa: E402

Release = dict[str, Any]
OC4IDS = SHARED / "oc4ids" / "0.9.4"


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
        conn = connect(settings)
        merger = processor(settings).profiles
        while projects.build_pending(conn, settings, merger)[0]:
            pass
        offset = len(releases) + 1
        costs: dict[str, list[float]] = {"project member": [], "no project": [], "round": []}
        for n in range(repeat):
            for name, ocid in (("project member", member), ("no project", "no-project")):
                release = {"ocid": ocid, "id": f"bench-{n}", "date": f"2030-01-01T00:00:{n:02d}Z", "tag": ["tender"],
                           "tender": {"id": "t", "description": f"cambio {n}"}}
                costs[name].append(feed(settings, [release], 1, offset)[0])
                offset += 1
            start = time.perf_counter()
            built = projects.build_pending(conn, settings, merger)
            costs["round"].append(time.perf_counter() - start)
            assert built == (1, 1), built
        # what a rebuild spends, in parts
        ocids = [r[0] for r in _query(conn, "SELECT ocid FROM project_members")]
        pid = _query(conn, "SELECT project_id FROM project_members WHERE ocid = %s", member)[0][0]
        reads = timed(lambda: _members_read(conn, settings, merger, pid), repeat)
        members = [Member(o, c) for o, c in reader.compiled_many(conn, ocids, merger).items()]
        conn.close()
        oc4ids = load_oc4ids_schema(OC4IDS, Path("/nonexistent"))
        conversion = timed(lambda: build("p", members, {}), repeat)
        project = build("p", members, {})
        checking = timed(lambda: conform(orjson.loads(orjson.dumps(project)), oc4ids), repeat)
        size = len(orjson.dumps(project))
    print(f"\nNAICM: {len(releases)} releases stored in {seconds:.2f} s ({len(ocids)} processes in one project, "
          f"{size / 1024:.0f} KB of OC4IDS); one-release batches, median of {repeat}")
    print("what | ms")
    print("--- | ---")
    member_ms = statistics.median(costs["project member"]) * 1e3
    loner_ms = statistics.median(costs["no project"]) * 1e3
    print(f"batch: 1 release of a process in no project (baseline) | {loner_ms:.1f}")
    print(f"batch: 1 release of a NAICM process (project marked) | {member_ms:.1f}")
    print(f"  the project's share of the batch | {member_ms - loner_ms:.1f}")
    print(f"project builder: one round rebuilding NAICM (off the stream's hot path) | "
          f"{statistics.median(costs['round']) * 1e3:.1f}")
    print(f"  of it: read the 292 members' compiled releases (records brought up to date) and linked releases | "
          f"{statistics.median(reads) * 1e3:.1f}")
    print("  of it: oc4idskit's conversion (core.projects.build, inputs copied) | "
          f"{statistics.median(conversion) * 1e3:.1f}")
    print(f"  of it: the OC4IDS schema check (core.projects.conform) | {statistics.median(checking) * 1e3:.1f}")


def _members_read(conn: Any, settings: Settings, merger: Any, pid: str) -> None:
    with conn.cursor() as cur:
        projects._members(cur, [pid], settings.base_url, merger)
    conn.commit()


def _query(conn: Any, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        rows = list(cur.fetchall())
    conn.commit()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    base = base_settings().model_copy(update={"oc4ids_dir": OC4IDS if OC4IDS.is_dir() else None})
    naicm(base, args.repeat)


if __name__ == "__main__":
    main()
