"""The soak's verdict: the store it ran compared with ground truth, and each subscriber with the change log.

Ground truth is a clean replay of the same release topic into an empty database (``ocds-live replay``).
The two stores must hold the same accepted releases (ocid, release id, digest), the same rejected messages
(by topic offset), byte-identical records as served (each compiled release brought up to date from its
checkpoint; versioned releases where both stores derived one), the same projects, and the same change
events (ocid, release id, kind) once each, in the same order per ocid, with gapless cursors. (How many
``project.updated`` events a run writes depends on where its batches began, so those are left out.)

Each subscriber's received cursors are compared with the store's change log for its filter, from the
cursor it started after to the final head: what it should have got and did not (lost), got twice
(duplicated), got after a later cursor (out of order), or got but should not have (a cursor outside its
filter, or one whose change is not the store's: wrong).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg2

from bench._soak_subscribers import Subscriber, identity
from core.filters import ChangeFilter
from core.profiles import Profiles
from core.store import reader

CHUNK = 2000


@dataclass
class StoreDiff:
    accepted: int
    rejected: int
    truth_accepted: int
    truth_rejected: int
    releases_missing: int
    releases_extra: int
    rejected_differ: int
    records_differ: int
    records_compared: int
    versioned_compared: int
    projects_differ: int
    changes_missing: int
    changes_duplicated: int
    ocids_reordered: int
    cursor_gaps: int
    examples: list[str]

    @property
    def failures(self) -> int:
        return (self.releases_missing + self.releases_extra + self.rejected_differ + self.records_differ
                + self.projects_differ + self.changes_missing + self.changes_duplicated + self.ocids_reordered
                + self.cursor_gaps)


@dataclass
class SubscriberDiff:
    name: str
    what: str
    expected: int
    received: int
    lost: int
    duplicated: int
    disordered: int
    wrong: int
    refusals: int
    connections: int
    resumed_elsewhere: int

    @property
    def failures(self) -> int:
        return self.lost + self.duplicated + self.disordered + self.wrong + self.refusals


def _rows(url: str, sql: str, params: Sequence[object] = ()) -> Iterator[tuple[Any, ...]]:
    """A query's rows, streamed with a server-side cursor (the change log does not fit in memory as JSON)."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor(name="soak") as cur:
            cur.itersize = CHUNK
            cur.execute(sql, tuple(params))
            yield from cur
    finally:
        conn.close()


def _count(url: str, table: str) -> int:
    return int(next(_rows(url, f"SELECT count(*) FROM {table}"))[0])  # noqa: S608 - our own table names


def _changes(url: str) -> tuple[Counter[tuple[str, str, str]], dict[str, list[tuple[str, str]]], int]:
    counts: Counter[tuple[str, str, str]] = Counter()
    by_ocid: dict[str, list[tuple[str, str]]] = defaultdict(list)
    gaps = expected = 0
    for cursor, ocid, rid, kind in _rows(url, "SELECT cursor, ocid, release_id, kind FROM changes ORDER BY cursor"):
        expected += 1
        gaps += int(cursor) != expected
        expected = int(cursor)
        if kind != "project.updated":
            counts[ocid, rid, kind] += 1
            by_ocid[ocid].append((rid, kind))
    return counts, dict(by_ocid), gaps


def _served(url: str, ocids: Sequence[str], compiler: Profiles) -> dict[str, bytes]:
    conn = psycopg2.connect(url)
    try:
        current = reader.compiled_many(conn, ocids, compiler)
    finally:
        conn.close()
    return {ocid: orjson.dumps(c, option=orjson.OPT_SORT_KEYS) for ocid, c in current.items()}


def _canonical(text: str) -> bytes:
    return orjson.dumps(orjson.loads(text), option=orjson.OPT_SORT_KEYS)


def compare_stores(url: str, truth: str, compiler: Profiles) -> StoreDiff:
    """The store at ``url`` against the replayed one at ``truth``."""
    examples: list[str] = []
    sql = "SELECT ocid, release_id, digest FROM releases"
    got, want = set(_rows(url, sql)), set(_rows(truth, sql))
    examples += [f"release missing: {r[:2]}" for r in list(want - got)[:3]]
    examples += [f"release extra: {r[:2]}" for r in list(got - want)[:3]]
    sql = "SELECT source_topic, source_partition, source_offset FROM rejected"
    rejected_got, rejected_want = Counter(_rows(url, sql)), Counter(_rows(truth, sql))
    rejected_differ = sum(((rejected_got - rejected_want) + (rejected_want - rejected_got)).values())

    sql = "SELECT ocid FROM records"
    ocids = sorted({o for (o,) in _rows(url, sql)} | {o for (o,) in _rows(truth, sql)})
    differ = versioned = 0
    for start in range(0, len(ocids), CHUNK):
        part = ocids[start:start + CHUNK]
        a, b = _served(url, part, compiler), _served(truth, part, compiler)
        sql = "SELECT ocid, versioned::text FROM records WHERE ocid = ANY(%s) AND versioned IS NOT NULL"
        va, vb = dict(_rows(url, sql, (part,))), dict(_rows(truth, sql, (part,)))
        for ocid in part:
            both = ocid in va and ocid in vb
            versioned += both
            if a.get(ocid) != b.get(ocid) or (both and _canonical(va[ocid]) != _canonical(vb[ocid])):
                differ += 1
                if len(examples) < 12:
                    examples.append(f"record differs: {ocid}")

    sql = "SELECT id, data FROM projects"
    pa, pb = dict(_rows(url, sql)), dict(_rows(truth, sql))
    projects_differ = sum(pa.get(k) != pb.get(k) for k in set(pa) | set(pb))

    counts, order, gaps = _changes(url)
    want_counts, want_order, _ = _changes(truth)
    missing, duplicated = +(want_counts - counts), +(counts - want_counts)
    examples += [f"change missing: {k}" for k in list(missing)[:3]]
    examples += [f"change extra: {k}" for k in list(duplicated)[:3]]
    reordered = sum(order.get(o) != want_order.get(o) for o in set(order) | set(want_order))
    return StoreDiff(
        accepted=len(got), rejected=sum(rejected_got.values()), truth_accepted=len(want),
        truth_rejected=sum(rejected_want.values()), releases_missing=len(want - got), releases_extra=len(got - want),
        rejected_differ=rejected_differ, records_differ=differ, records_compared=len(ocids),
        versioned_compared=versioned, projects_differ=projects_differ, changes_missing=sum(missing.values()),
        changes_duplicated=sum(duplicated.values()), ocids_reordered=reordered, cursor_gaps=gaps,
        examples=examples,
    )


def compare_subscribers(url: str, subs: Sequence[Subscriber], head: int) -> list[SubscriberDiff]:
    """Each subscriber's received changes against the store's change log for its filter, up to ``head``."""
    filters = [ChangeFilter.from_mapping(s.spec.filters) for s in subs]
    expected: list[dict[int, int]] = [{} for _ in subs]  # cursor -> identity
    sql = ("SELECT cursor, ocid, release_id, kind, jsonb_build_object('ocid', ocid, 'kind', kind, "
           "'kinds', event::jsonb->'kinds', 'summary', event::jsonb->'summary')::text FROM changes WHERE cursor <= %s "
           "ORDER BY cursor")
    starts = [s.start if s.start is not None else head for s in subs]
    for cursor, ocid, rid, kind, text in _rows(url, sql, (head,)):
        event = orjson.loads(text)
        digest = identity(ocid, rid, kind)
        for n, f in enumerate(filters):
            if cursor > starts[n] and f.matches(event):
                expected[n][int(cursor)] = digest
    out = []
    for sub, want in zip(subs, expected, strict=True):
        received = list(sub.cursors)
        seen: set[int] = set()
        duplicated = disordered = wrong = 0
        for i, cursor in enumerate(received):
            if cursor in seen:
                duplicated += 1
            seen.add(cursor)
            if i and cursor <= received[i - 1]:
                disordered += 1
            if want.get(cursor) != sub.digests[i]:
                wrong += 1
        out.append(SubscriberDiff(
            sub.spec.name, sub.spec.describe(), len(want), len(received), len(set(want) - seen), duplicated,
            disordered, wrong, len(sub.refusals), sub.connections, sub.resumed_elsewhere))
    return out
