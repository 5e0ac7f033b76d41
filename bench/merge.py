"""Per-release cost of merging one growing process: RecordMerger.extend vs ocdsmerge re-merging everything.

    .venv/bin/python bench/merge.py [--releases 500] [--runs 5]

The process starts with Jalisco's real releases for ocds-xs1qbl-SFIN-03-0007-00-2017 (planning, tender,
award, contract, implementation, ~8 KB each); every later release is its implementation release with a
new id and date, one new payment (transaction) and a changed contract status, so the record keeps growing
like INAI's 138-release records. Printed: for release n, the median cost of ``extend`` (over a window of
releases around n, in each of several runs), of ocdsmerge's full re-merge of releases 1..n (compiled and
versioned: what a processor without incremental merge pays per arrival), of our own full ``merge``, and
of copying the compiled release (what change detection pays if it keeps the previous one).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import ocdsmerge
import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.merge import MergedRecord, RecordMerger  # noqa: E402
from core.schema import load_schema  # noqa: E402
from core.types import Release  # noqa: E402

SHARED = REPO.parent / "shared"
OCID = "ocds-xs1qbl-SFIN-03-0007-00-2017"
POINTS = (1, 100, 500)
WINDOW = 5  # releases on each side of a point whose extend costs are pooled (single calls are ~100 µs)


def growing_process(count: int) -> list[Release]:
    """``count`` releases of one process: the real ones first, then synthetic implementation updates."""
    lines = (SHARED / "data" / "real" / "mx-jalisco.releases.jsonl").read_bytes().splitlines()
    real = [release for release in map(orjson.loads, lines) if release["ocid"] == OCID]
    template = real[-1]
    releases = real[:count]
    for number in range(len(releases), count):
        release = copy.deepcopy(template)
        release["id"] = f"{OCID}-update-{number:05d}"
        release["date"] = f"2018-02-{1 + number // 1440 % 28:02d}T{number // 60 % 24:02d}:{number % 60:02d}:00Z"
        release["tag"] = ["implementationUpdate"]
        contract = release["contracts"][0]
        contract["status"] = ("active", "pending")[number % 2]
        transaction = contract["implementation"]["transactions"][0]
        transaction.update(id=f"payment-{number}", date=release["date"], value={"amount": 1000.0 + number,
                                                                                "currency": "MXN"})
        releases.append(release)
    return releases


def timed(function: Callable[[], object], repeat: int = 3) -> float:
    """The best of ``repeat`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=max(POINTS))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    schema = load_schema(SHARED / "ocds" / "1.1.5", cache_dir=Path("/nonexistent"))
    merger = RecordMerger(schema)
    reference = ocdsmerge.Merger(schema=schema.release)
    releases = growing_process(args.releases)
    points = [point for point in POINTS if point <= len(releases)]

    costs: list[list[float]] = [[] for _ in releases]  # extend cost of release i, one per run
    for _ in range(args.runs):
        record: MergedRecord | None = None
        for index, release in enumerate(releases):
            start = time.perf_counter()
            record = merger.extend(record, release)
            costs[index].append(time.perf_counter() - start)
    assert record is not None
    whole = merger.merge(releases)
    assert orjson.dumps(record.versioned, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        whole.versioned, option=orjson.OPT_SORT_KEYS
    ), "extend and merge disagree"

    print(f"one process growing to {len(releases)} releases; extend: median over releases n±{WINDOW} "
          f"and {args.runs} runs; full merges: best of 3")
    header = ("release", "extend µs", "ocdsmerge re-merge ms", "our merge() ms", "copy compiled µs",
              "versioned KB")
    print(" | ".join(header))
    print(" | ".join("-" * len(title) for title in header))
    first = 0.0
    for point in points:
        window = costs[max(0, point - 1 - WINDOW): point + WINDOW] if point > 1 else costs[:1]
        extend = statistics.median(cost for per_run in window for cost in per_run)
        first = first or extend
        prefix = releases[:point]
        full = timed(lambda p=prefix: (reference.create_compiled_release(p),  # type: ignore[misc]
                                       reference.create_versioned_release(p)))
        ours = timed(lambda p=prefix: merger.merge(p))  # type: ignore[misc]
        state = merger.merge(prefix)
        copying = timed(lambda s=state: copy.deepcopy(s.compiled))  # type: ignore[misc]
        size = len(orjson.dumps(state.versioned)) / 1024
        print(f"{point} | {extend * 1e6:.0f} ({extend / first:.2f}x) | {full * 1e3:.1f} | {ours * 1e3:.1f} | "
              f"{copying * 1e6:.0f} | {size:.0f}")
    total = sum(statistics.median(per_run) for per_run in costs)
    print(f"all {len(releases)} arrivals: extend {total:.3f} s in all")


if __name__ == "__main__":
    main()
