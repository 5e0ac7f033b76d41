"""Stream-processor test helpers: send releases, wait until the store has processed them, snapshot it.

A snapshot holds what the guarantees speak about, as canonical bytes: the accepted releases
(ocid, release id, digest), every record's compiled and versioned release (``orjson`` with sorted keys)
and the change log (cursor, ocid, release id, kind). Two stores fed the same releases must give equal
snapshots, whatever crashed, rebalanced or was re-delivered on the way.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg2

from core.kafka import OutgoingRelease, ReleaseProducer, ensure_topics
from core.merge import RecordMerger
from core.schema import load_schema
from core.settings import Settings
from core.store import reader
from producers.simulator import simulate
from tests.support.stack import Process

Release = dict[str, Any]


# -- what to send ---------------------------------------------------------------------------------


def simulated(seed: int, count: int, processes: int) -> list[Release]:
    """The first ``count`` valid releases of ``processes`` simulated processes (date order)."""
    releases = [e.release for e in itertools.islice(simulate(seed=seed, processes=processes), count)]
    assert len(releases) == count, f"{processes} processes give only {len(releases)} releases"
    return releases


def shuffled_per_process(releases: Sequence[Release], seed: int) -> list[Release]:
    """The same releases, each process's own releases in a random order (processes still interleaved)."""
    rng = random.Random(seed)
    by_ocid: dict[str, list[Release]] = defaultdict(list)
    for release in releases:
        by_ocid[release["ocid"]].append(release)
    for own in by_ocid.values():
        rng.shuffle(own)
    # keep the interleaving of processes: the n-th slot of an ocid gets its n-th shuffled release
    taken: Counter[str] = Counter()
    out = []
    for release in releases:
        ocid = release["ocid"]
        out.append(by_ocid[ocid][taken[ocid]])
        taken[ocid] += 1
    return out


def outgoing(releases: Iterable[Release], publisher: str = "simulator") -> list[OutgoingRelease]:
    """Releases as the producers send them (key = ocid, publisher headers)."""
    return [OutgoingRelease(r["ocid"], r["id"], orjson.dumps(r), publisher, "test") for r in releases]


def send(settings: Settings, items: Sequence[OutgoingRelease], chunk: int = 1000) -> list[tuple[int, int]]:
    """Send ``items`` in order to the releases topic (created if missing), wait for every ack, and
    return where each landed: (partition, offset)."""
    ensure_topics(settings)
    producer = ReleaseProducer(settings, client_id="ocds-live-tests")
    where: list[tuple[int, int]] = []
    try:
        for start in range(0, len(items), chunk):
            acks = producer.send_all(items[start:start + chunk], timeout=60)
            where += [(int(m.partition), int(m.offset)) for m in acks]
    finally:
        producer.close()
    return where


# -- where the processor is -----------------------------------------------------------------------


def end_offsets(settings: Settings, topic: str | None = None) -> dict[int, int]:
    """The topic's end offset per partition (the next offset to be written)."""
    from kafka import KafkaConsumer, TopicPartition

    name = topic or settings.releases_topic
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None)
    try:
        partitions = consumer.partitions_for_topic(name) or set()
        ends = consumer.end_offsets([TopicPartition(name, p) for p in partitions])
        return {tp.partition: int(offset) for tp, offset in ends.items()}
    finally:
        consumer.close()


def processed_offsets(settings: Settings, group: str | None = None, topic: str | None = None) -> dict[int, int]:
    """The next offset to process per partition, as the store recorded it for ``group``."""
    rows = query(settings, "SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = %s "
                 "AND topic = %s", (group or settings.app_id, topic or settings.releases_topic))
    return {int(p): int(o) for p, o in rows}


def wait_caught_up(settings: Settings, *, group: str | None = None, topic: str | None = None,
                   timeout: float = 120.0) -> float:
    """Wait until the store has processed the topic up to its end offsets, and built every project marked on the
    way; return the seconds waited."""
    ends = {p: o for p, o in end_offsets(settings, topic).items() if o > 0}
    started = time.monotonic()
    while True:
        done = processed_offsets(settings, group, topic)
        if all(done.get(p, 0) >= o for p, o in ends.items()) and not count(settings, "project_dirty"):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not caught up after {timeout:.0f}s: processed {done}, topic ends {ends}")
        time.sleep(0.2)


def wait_count(settings: Settings, table: str, at_least: int, timeout: float = 120.0) -> int:
    """Wait until ``table`` has ``at_least`` rows; return how many it has then."""
    deadline = time.monotonic() + timeout
    while True:
        n = count(settings, table)
        if n >= at_least:
            return n
        if time.monotonic() > deadline:
            raise AssertionError(f"{table} has {n} rows after {timeout:.0f}s, expected at least {at_least}")
        time.sleep(0.05)


# -- what the store holds -------------------------------------------------------------------------


def query(settings: Settings, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(settings.database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, tuple(params))
            return list(cur.fetchall())
    finally:
        conn.close()


def count(settings: Settings, table: str) -> int:
    assert table.isidentifier(), table
    return int(query(settings, f"SELECT count(*) FROM {table}")[0][0])  # noqa: S608 - a checked identifier


def _canonical(text: str) -> bytes:
    return orjson.dumps(orjson.loads(text), option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True)
class Snapshot:
    """What two stores fed the same releases must agree on."""

    releases: frozenset[tuple[str, str, str]]  # (ocid, release id, digest)
    records: dict[str, tuple[bytes, bytes]]  # ocid -> (compiled, versioned), canonical JSON
    changes: tuple[tuple[int, str, str, str], ...]  # (cursor, ocid, release id, kind), by cursor: processes'
    # The project builder rebuilds each marked project once per round, so how many project.updated events a run
    # writes depends on when its rounds ran: what runs must agree on is the projects, and that each project's
    # events chain its digests from nothing to the stored project (none lost, none repeated).
    projects: dict[str, bytes] = field(default_factory=dict)  # id -> the OC4IDS project, canonical JSON
    cursors: tuple[int, ...] = ()  # every change's cursor, projects' too
    project_chains: dict[str, tuple[str | None, ...]] = field(default_factory=dict)  # id -> previous, digests...

    def change_counts(self) -> Counter[tuple[str, str, str]]:
        return Counter((ocid, rid, kind) for _, ocid, rid, kind in self.changes)

    def changes_by_ocid(self) -> dict[str, list[tuple[str, str]]]:
        """Each ocid's (release id, kind) in cursor order: what subscribers may rely on (per ocid)."""
        out: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for _, ocid, rid, kind in self.changes:
            out[ocid].append((rid, kind))
        return dict(out)


@functools.cache
def _merger(versioned: bool = True) -> RecordMerger:
    from tests.conftest import SCHEMA_DIR

    return RecordMerger(load_schema(SCHEMA_DIR, cache_dir=Path("/nonexistent")), versioned=versioned)


def compiled_releases(settings: Settings) -> dict[str, bytes]:
    """Every record's current compiled release as the store serves it (its checkpoint brought up to date),
    canonical JSON."""
    with psycopg2.connect(settings.database_url) as conn:
        ocids = [row[0] for row in query(settings, "SELECT ocid FROM records")]
        current = reader.compiled_many(conn, ocids, _merger(versioned=False))
    conn.close()
    return {ocid: orjson.dumps(compiled, option=orjson.OPT_SORT_KEYS) for ocid, compiled in current.items()}


def _versioned(settings: Settings, ocids: Sequence[str]) -> dict[str, bytes]:
    """Versioned releases derived from the stored releases, as the store does on demand."""
    by_ocid: dict[str, list[Release]] = defaultdict(list)
    for ocid, data in query(settings, "SELECT ocid, data::text FROM releases WHERE ocid = ANY(%s)", (list(ocids),)):
        by_ocid[ocid].append(orjson.loads(data))
    return {ocid: orjson.dumps(_merger().merge(by_ocid[ocid]).versioned, option=orjson.OPT_SORT_KEYS)
            for ocid in ocids}


def snapshot(settings: Settings) -> Snapshot:
    """The store's releases, records and change log. A versioned release the store has not derived
    yet (NULL) is derived here from the stored releases, as the store would serve it."""
    releases = frozenset((o, r, d) for o, r, d in query(settings, "SELECT ocid, release_id, digest FROM releases"))
    rows = query(settings, "SELECT ocid, versioned::text FROM records")
    derived = _versioned(settings, [ocid for ocid, v in rows if v is None])
    compiled = compiled_releases(settings)
    records = {ocid: (compiled[ocid], derived[ocid] if v is None else _canonical(v)) for ocid, v in rows}
    rows = query(settings, "SELECT cursor, ocid, release_id, kind FROM changes ORDER BY cursor")
    changes = tuple((int(c), o, r, k) for c, o, r, k in rows if k != "project.updated")
    projects = {pid: _canonical(data) for pid, data in query(settings, "SELECT id, data FROM projects")}
    chains: dict[str, list[str | None]] = defaultdict(list)
    for pid, previous, digest in query(settings, "SELECT ocid, event::jsonb #>> '{summary,previous}', "
                                       "event::jsonb #>> '{summary,digest}' FROM changes "
                                       "WHERE kind = 'project.updated' ORDER BY cursor"):
        chains[pid] += [previous, digest]
    return Snapshot(releases, records, changes, projects, tuple(int(c) for c, *_ in rows),
                    {pid: tuple(chain) for pid, chain in chains.items()})


def assert_gapless(snap: Snapshot) -> None:
    cursors = list(snap.cursors) or [c for c, *_ in snap.changes]
    assert cursors == list(range(1, len(cursors) + 1)), "change cursors are not 1..N without gaps"


def assert_same_projects(got: Snapshot, want: Snapshot) -> None:
    """Byte-identical projects, each with its events chaining its digests from nothing to the stored project."""
    assert sorted(got.projects) == sorted(want.projects), "the stores hold different projects"
    for pid, data in want.projects.items():
        assert got.projects[pid] == data, f"project {pid} differs"
    for pid, data in got.projects.items():
        chain = got.project_chains.get(pid, ())
        assert chain and chain[0] is None, f"project {pid}: its first event is lost"
        pairs = list(zip(chain[0::2], chain[1::2], strict=True))
        assert all(a[1] == b[0] for a, b in zip(pairs, pairs[1:], strict=False)), \
            f"project {pid}: a change was lost or repeated"
        assert chain[-1] == hashlib.sha256(data).hexdigest(), f"project {pid}: the last event is not the project"


def assert_same_records(got: Snapshot, want: Snapshot) -> None:
    """Byte-identical compiled and versioned records (the first difference is named)."""
    assert sorted(got.records) == sorted(want.records), "the stores hold records of different ocids"
    for ocid, (compiled, versioned) in sorted(want.records.items()):
        assert got.records[ocid][0] == compiled, f"compiled release of {ocid} differs"
        assert got.records[ocid][1] == versioned, f"versioned release of {ocid} differs"


def assert_same_store(got: Snapshot, want: Snapshot) -> None:
    """Same releases, byte-identical records, the same change events exactly once, gapless cursors."""
    assert got.releases == want.releases, (
        f"releases differ: {len(want.releases - got.releases)} missing, {len(got.releases - want.releases)} extra")
    assert_same_records(got, want)
    counts, expected = got.change_counts(), want.change_counts()
    duplicated = +(counts - expected)
    missing = +(expected - counts)
    assert not duplicated and not missing, (
        f"change events: {sum(duplicated.values())} duplicated (e.g. {list(duplicated)[:3]}), "
        f"{sum(missing.values())} missing (e.g. {list(missing)[:3]})")
    assert got.changes_by_ocid() == want.changes_by_ocid(), "an ocid's change events came in another order"
    assert_same_projects(got, want)
    assert_gapless(got)


# -- whole runs -----------------------------------------------------------------------------------


def clean_run(settings: Settings, items: Sequence[OutgoingRelease], log: Path) -> Snapshot:
    """One worker, the items sent, everything processed, the worker stopped: the reference store."""
    worker = Process(settings, "process", log=log)
    try:
        send(settings, items)
        wait_caught_up(settings, timeout=300)
    finally:
        worker.stop()
    return snapshot(settings)
