"""Whether two stores fed the same release topic hold the same data: what a replay must reproduce.

Compared in full: the releases (ocid, release id, digest), every record's compiled release as the store
serves it (the same checkpoint with no release after it in both stores, or else the checkpoint brought up
to date in each, canonical JSON), and the change events (ocid, release id,
kind) with each ocid's in order,
and the infrastructure projects. Versioned releases are derived on first read, from the stored releases
alone; they are compared on a sample of records (derived from each store's releases, as the store does).
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg2

PAGE = 2000


@dataclass
class Comparison:
    """What differs between two stores (empty lists: identical)."""

    releases: tuple[int, int] = (0, 0)  # how many each store holds
    records: tuple[int, int] = (0, 0)
    changes: tuple[int, int] = (0, 0)
    differences: list[str] = field(default_factory=list)
    versioned_sampled: int = 0
    projects: int = 0  # built projects compared
    projects_pending: int = 0  # projects still marked for rebuilding in either store, not compared
    compiled_merged: int = 0  # records whose compiled release was brought up to date to be compared

    @property
    def identical(self) -> bool:
        return not self.differences


def _rows(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())
    finally:
        conn.close()


def _digest(value: Any) -> bytes:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).digest()


def _compiled(url: str, ocids: list[str], merger: Any) -> Iterator[tuple[str, bytes]]:
    from core.store import reader

    conn = psycopg2.connect(url)
    try:
        for start in range(0, len(ocids), PAGE):
            page = reader.compiled_many(conn, ocids[start:start + PAGE], merger)
            for ocid in ocids[start:start + PAGE]:
                yield ocid, _digest(page.get(ocid))
    finally:
        conn.close()


def _versioned(url: str, ocids: list[str], merger: Any) -> dict[str, bytes]:
    by_ocid: dict[str, list[Any]] = defaultdict(list)
    for ocid, data in _rows(url, "SELECT ocid, data::text FROM releases WHERE ocid = ANY(%s)", (ocids,)):
        by_ocid[ocid].append(orjson.loads(data))
    return {ocid: _digest(merger.merge(by_ocid[ocid]).versioned) for ocid in ocids}


def compare(first: str, second: str, schema: Any, *, versioned_sample: int = 300, seed: int = 14) -> Comparison:
    """Compare the stores at two database URLs; ``schema`` is the OCDS schema both merged with."""
    from core.merge import RecordMerger

    out = Comparison()
    query = "SELECT ocid, release_id, digest FROM releases"
    a, b = set(_rows(first, query)), set(_rows(second, query))
    out.releases = (len(a), len(b))
    if a != b:
        out.differences.append(f"releases: {len(a - b)} only in the first store, {len(b - a)} only in the second")
    del a, b

    # a record whose checkpoint is the same in both stores, with no release after it, serves the same compiled
    # release; every other record's is brought up to date in both and compared
    query = "SELECT ocid, md5(compiled::text), tail_bytes FROM records"
    ra = {o: (h, t) for o, h, t in _rows(first, query)}
    rb = {o: (h, t) for o, h, t in _rows(second, query)}
    out.records = (len(ra), len(rb))
    if ra.keys() != rb.keys():
        out.differences.append(f"records: {len(ra.keys() - rb.keys())} only in the first store, "
                               f"{len(rb.keys() - ra.keys())} only in the second")
    ocids_a = sorted(ra)
    full = [o for o in ocids_a if o in rb and (ra[o] != rb[o] or ra[o][1])]
    out.compiled_merged = len(full)
    compiler = RecordMerger(schema, versioned=False)
    differing = [ocid for (ocid, x), (_, y) in zip(_compiled(first, full, compiler),
                                                   _compiled(second, full, compiler), strict=True) if x != y]
    if differing:
        out.differences.append(f"compiled releases: {len(differing)} differ (e.g. {differing[:3]})")

    sample = random.Random(seed).sample(ocids_a, min(versioned_sample, len(ocids_a)))
    merger = RecordMerger(schema)
    va, vb = _versioned(first, sample, merger), _versioned(second, sample, merger)
    out.versioned_sampled = len(sample)
    if va != vb:
        bad = [o for o in sample if va[o] != vb[o]]
        out.differences.append(f"versioned releases: {len(bad)} of {len(sample)} sampled differ (e.g. {bad[:3]})")

    # a project still marked for rebuilding in either store is not compared: its builder had not caught up
    pending = {pid for url in (first, second) if _rows(url, "SELECT to_regclass('project_dirty')")[0][0]
               for (pid,) in _rows(url, "SELECT project_id FROM project_dirty")}
    query = "SELECT id, digest FROM projects"
    pa = {k: v for k, v in _rows(first, query) if k not in pending}
    pb = {k: v for k, v in _rows(second, query) if k not in pending}
    out.projects, out.projects_pending = len(pa), len(pending)
    if pa != pb:
        out.differences.append(f"projects: {len(pa)} and {len(pb)} built, "
                               f"{sum(pa.get(k) != pb.get(k) for k in pa.keys() | pb.keys())} differ")

    # a project's events depend on where batches began (it is rebuilt once per batch): not compared
    query = "SELECT ocid, release_id, kind FROM changes WHERE kind <> 'project.updated' ORDER BY cursor"
    ca, cb = _rows(first, query), _rows(second, query)
    out.changes = (len(ca), len(cb))
    per_a: dict[str, list[tuple[str, str]]] = defaultdict(list)
    per_b: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for rows, per in ((ca, per_a), (cb, per_b)):
        for ocid, release_id, kind in rows:
            per[ocid].append((release_id, kind))
    if per_a != per_b:
        bad = sorted(o for o in per_a.keys() | per_b.keys() if per_a.get(o) != per_b.get(o))
        out.differences.append(f"change events: {len(bad)} ocids with other events or another order (e.g. {bad[:3]})")
    return out
