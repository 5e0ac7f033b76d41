"""``ocds-live watch --count PATH...``: the red-flag rules over release files, in batch, as Cardinal runs them.

Each process's releases are merged in date order (compiled releases only); an award or contract is "first
published" on the date of the first release whose compiled release holds it. Then every rule runs once over the
final compiled releases, the population rules over all of them. The same pure rules as the watchdog service, so the
counts are what a watchdog fed these files would hold active at the end.
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

import orjson

from core.exceptions import MergeConflictError
from core.merge import RecordMerger, order_key
from core.redflags import Flag, mexico, population
from core.redflags.cardinal import bid_counts, bid_ratio
from core.redflags.config import RulesConfig
from core.redflags.rules import RULES, process_flags


def compile_all(releases: Iterable[dict[str, Any]], merger: RecordMerger
                ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, str]], int]:
    """(compiled release, first publication of each award and contract) per ocid, and releases that did not merge."""
    by_ocid: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for release in releases:
        if isinstance(release.get("ocid"), str):
            by_ocid[release["ocid"]].append(release)
    compiled: dict[str, dict[str, Any]] = {}
    published: dict[str, dict[str, str]] = {}
    failed = 0
    for ocid, own in by_ocid.items():
        record = None
        seen: dict[str, str] = {}
        for release in sorted(own, key=order_key):
            try:
                record = merger.extend(record, release)
            except (MergeConflictError, ValueError):
                failed += 1
                continue
            date = release.get("date")
            if isinstance(date, str):
                for key, _, _ in mexico.dated_items(record.compiled):
                    seen.setdefault(key, date)
        if record is not None:
            compiled[ocid], published[ocid] = record.compiled, seen
    return compiled, published, failed


def evaluate(compiled: dict[str, dict[str, Any]], published: dict[str, dict[str, str]],
             config: RulesConfig) -> list[Flag]:
    """Every rule's flags over these final compiled releases."""
    flags = [f for ocid, release in compiled.items() for f in process_flags(ocid, release, config, published[ocid])]
    awards = [a for ocid, release in compiled.items() for a in mexico.direct_awards(ocid, release, config)]
    flags += mexico.repeated_direct_awards(awards, config)
    ratios: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for ocid, release in compiled.items():
        if (row := bid_ratio(release, config)) is not None:
            ratios[row["currency"]].append((ocid, row))
    for rows in ratios.values():
        ordered = sorted(row["ratio"] for _, row in rows)
        fences = population.ratio_fences(len(ordered), ordered.__getitem__, config)
        if fences is None:
            continue
        for ocid, row in rows:
            if row["ratio"] <= fences["lower_fence"]:
                flags.append(population.ratio_flag("R024", ocid, row, fences))
            if fences["upper_fence"] > 0 and row["ratio"] >= fences["upper_fence"]:
                flags.append(population.ratio_flag("R058", ocid, row, fences))
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for release in compiled.values():
        for kind, party, disqualified, submitted in bid_counts(release):
            totals[kind, party][0] += disqualified
            totals[kind, party][1] += submitted
    flags += population.r038_flags([(k, p, d, n) for (k, p), (d, n) in totals.items()], config)
    return flags


def count_files(paths: list[str], merger: RecordMerger, config: RulesConfig) -> str:
    """The table of flags per rule over the releases in ``paths`` (any format ``ocds-live load`` reads)."""
    from producers.loader import read_releases

    releases = [orjson.loads(item.value) for path in paths for item in read_releases(path) if item.value is not None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ocdsmerge warns of duplicate ids, common in real data
        compiled, published, failed = compile_all(releases, merger)
    counts = Counter(f.rule for f in evaluate(compiled, published, config))
    lines = [f"{len(releases)} releases, {len(compiled)} processes ({failed} releases did not merge)",
             f"{'rule':<24} {'flags':>6}  name"]
    lines += [f"{code:<24} {counts.get(code, 0):>6}  {rule.english}"
              for code, rule in RULES.items() if rule.kind != "project"]  # release files hold no OC4IDS project
    return "\n".join(lines) + "\n"


def main(paths: list[str], settings: Any) -> int:
    from core.redflags.config import load_config
    from core.schema import load_schema

    merger = RecordMerger(load_schema(settings.schema_dir, settings.cache_dir), versioned=False)
    sys.stdout.write(count_files(paths, merger, load_config(settings.redflags_file)))
    return 0
