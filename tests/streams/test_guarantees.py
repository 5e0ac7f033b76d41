"""The stream processor's guarantees, proven on the real Kafka and PostgreSQL (DESIGN.md, "The guarantees").

Every scenario is compared with a clean run of the same 5,000 simulated releases: one worker, no
crash, no rebalance. Equal means the same accepted releases (ocid, id, digest), byte-identical compiled
and versioned records, and the same change events exactly once with cursors 1..N; and, for the infrastructure
projects the simulated processes name (``planning.budget.projectID``), byte-identical projects whose
``project.updated`` events chain their digests with none lost or repeated (how many there are depends on when
the project builder's rounds ran, since a round rebuilds each marked project once).
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import ocdsmerge
import orjson
import pytest

from core.kafka import OutgoingRelease
from core.schema import OcdsSchema
from core.settings import Settings
from core.store import writer
from core.summary import summarize
from tests.support import pipeline
from tests.support.kafka import read_topic
from tests.support.pipeline import Snapshot
from tests.support.stack import Process, base_settings, fresh_stack

pytestmark = pytest.mark.integration

RELEASES = 5000
PROCESSES = 900  # ~5.5 releases per record
SEED = 7
BATCH = {"batch_size": 200}


@dataclass(frozen=True)
class Clean:
    settings: Settings
    items: list[OutgoingRelease]
    snapshot: Snapshot
    seconds: float


@pytest.fixture(scope="module", autouse=True)
def _quick_group_membership() -> Iterator[None]:
    """A SIGKILLed worker leaves its consumer group after 10 s, not Faust's default 60 s."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BROKER_SESSION_TIMEOUT", "10")
        mp.setenv("BROKER_REBALANCE_TIMEOUT", "20")
        yield


@pytest.fixture(scope="module")
def releases() -> list[pipeline.Release]:
    return pipeline.simulated(SEED, RELEASES, PROCESSES)


@pytest.fixture(scope="module")
def clean(releases: list[pipeline.Release], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clean]:
    """The reference: the 5,000 releases through one worker that nobody disturbs (its stack stays up)."""
    items = pipeline.outgoing(releases)
    with fresh_stack(base_settings(), **BATCH) as settings:
        started = time.monotonic()
        snap = pipeline.clean_run(settings, items, tmp_path_factory.mktemp("clean") / "worker.log")
        seconds = time.monotonic() - started
        assert len(snap.releases) == RELEASES
        assert len(snap.records) == len({r["ocid"] for r in releases})
        assert len(snap.projects) >= 10, "the simulated processes name too few projects to prove anything"
        pipeline.assert_gapless(snap)
        yield Clean(settings, items, snap, seconds)


def test_kill_9_mid_stream_then_restart(clean: Clean, tmp_path: Path) -> None:
    """A worker killed with SIGKILL a third of the way in loses nothing and applies nothing twice."""
    with fresh_stack(base_settings(), **BATCH) as settings:
        first = Process(settings, "process", log=tmp_path / "first.log")
        try:
            pipeline.send(settings, clean.items)
            pipeline.wait_count(settings, "releases", RELEASES // 3)
            first.kill()
        finally:
            first.stop()
        at_kill = pipeline.count(settings, "releases")
        assert at_kill < RELEASES, "the worker finished before it was killed: nothing was proven"
        second = Process(settings, "process", log=tmp_path / "second.log")
        try:
            pipeline.wait_caught_up(settings, timeout=240)
        finally:
            second.stop()
        pipeline.assert_same_store(pipeline.snapshot(settings), clean.snapshot)


def test_replay_and_shuffled_delivery_give_identical_records(
    clean: Clean, releases: list[pipeline.Release], tmp_path: Path
) -> None:
    """Replaying the topic into an empty store, or shuffling each process's releases, gives identical records."""
    shuffled = pipeline.outgoing(pipeline.shuffled_per_process(releases, seed=SEED + 1))
    assert [i.value for i in shuffled] != [i.value for i in clean.items]
    with fresh_stack(base_settings(), releases_topic=clean.settings.releases_topic, **BATCH) as replayed, \
            fresh_stack(base_settings(), **BATCH) as reordered:
        # both at once: two workers use the two cores
        replayer = Process(replayed, "process", log=tmp_path / "replay.log")
        worker = Process(reordered, "process", log=tmp_path / "shuffled.log")
        try:
            pipeline.send(reordered, shuffled)
            pipeline.wait_caught_up(replayed, timeout=240)
            pipeline.wait_caught_up(reordered, timeout=240)
        finally:
            replayer.stop()
            worker.stop()
        replay = pipeline.snapshot(replayed)
        pipeline.assert_same_store(replay, clean.snapshot)
        shuffle = pipeline.snapshot(reordered)
        assert shuffle.releases == clean.snapshot.releases
        pipeline.assert_same_records(shuffle, clean.snapshot)
        pipeline.assert_same_projects(shuffle, clean.snapshot)
        pipeline.assert_gapless(shuffle)


ASSIGNED = re.compile(r"^\[(?P<ts>[\d\- :,]+)\] \[\d+\] \[INFO\] Setting newly assigned partitions", re.M)


def assignments(log: str, topic: str) -> list[tuple[float, set[int]]]:
    """(epoch seconds, partitions of ``topic``) each time Faust logged a new assignment."""
    out = []
    for match in ASSIGNED.finditer(log):
        when = datetime.strptime(match["ts"], "%Y-%m-%d %H:%M:%S,%f").astimezone().timestamp()
        table = log[match.end():].split(" for group ", 1)[0]
        partitions: set[int] = set()
        row = re.search(rf"\|\s*{re.escape(topic)}\s*\|\s*\{{([^}}]*)\}}", table)
        for part in (row[1].split(",") if row else []):
            low, _, high = part.strip().partition("-")
            partitions.update(range(int(low), int(high or low) + 1))
        out.append((when, partitions))
    return out


def test_two_workers_share_partitions_through_rebalances(clean: Clean, tmp_path: Path) -> None:
    """A second worker joining mid-stream and the first one leaving later change nothing in the store."""
    with fresh_stack(base_settings(), **BATCH) as settings:
        topic = settings.releases_topic
        third = RELEASES // 3
        a = Process(settings, "process", "--loglevel", "info", log=tmp_path / "a.log")
        b: Process | None = None
        try:
            # A alone, then B joins while A is busy: the first rebalance
            pipeline.send(settings, clean.items[:third])
            pipeline.wait_count(settings, "releases", RELEASES // 6)
            b = Process(settings, "process", "--loglevel", "info", log=tmp_path / "b.log")
            while True:
                a_log, b_log = assignments(a.output(), topic), assignments(b.output(), topic)
                if len(a_log) >= 2 and b_log and b_log[-1][1]:
                    break
                assert b.proc.poll() is None and a.proc.poll() is None, b.output()[-3000:]
                time.sleep(0.2)
            a_parts, b_parts = a_log[-1][1], b_log[-1][1]
            assert a_parts and b_parts and not a_parts & b_parts, (a_log, b_log)
            # the second third while the partitions are shared: each worker stores its own partitions
            before = pipeline.end_offsets(settings)
            pipeline.send(settings, clean.items[third:2 * third])
            after = pipeline.end_offsets(settings)
            pipeline.wait_caught_up(settings)
            assert (a_log, b_log) == (assignments(a.output(), topic), assignments(b.output(), topic)), \
                "another rebalance happened: the share is unknown"
            # A leaves: the second rebalance; B alone stores the last third
            a.stop()
            after_a = pipeline.count(settings, "releases")
            pipeline.send(settings, clean.items[2 * third:])
            pipeline.wait_caught_up(settings, timeout=240)
        finally:
            a.stop()
            if b is not None:
                b.stop()
        pipeline.assert_same_store(pipeline.snapshot(settings), clean.snapshot)

        stored = dict(pipeline.query(
            settings, "SELECT source_partition, count(*) FROM releases r JOIN unnest(%s::int[], %s::bigint[]) "
            "AS s(p, o) ON r.source_partition = s.p AND r.source_offset >= s.o GROUP BY 1",
            (list(before), [before[p] for p in before])))
        shared = {p: after[p] - before[p] for p in after}
        print(f"\nA held {sorted(a_parts)}, B held {sorted(b_parts)}; releases sent while shared: {shared}")
        assert sum(shared[p] for p in b_parts) > 0 and sum(shared[p] for p in a_parts) > 0, shared
        assert all(stored.get(p, 0) >= shared[p] for p in shared), (stored, shared)
        assert RELEASES - after_a > 0, "B stored nothing after A left"
        b_after = assignments(b.output(), topic)[-1][1]
        assert b_after == set(range(settings.partitions)), "B did not take over A's partitions"


def test_redelivered_releases_change_nothing(releases: list[pipeline.Release], tmp_path: Path) -> None:
    """The same 100 releases sent twice (new offsets, same content) add no release and no change event."""
    items = pipeline.outgoing(releases[:100])
    with fresh_stack(base_settings(), **BATCH) as settings:
        worker = Process(settings, "process", log=tmp_path / "worker.log")
        try:
            pipeline.send(settings, items)
            pipeline.wait_caught_up(settings)
            once = pipeline.snapshot(settings)
            pipeline.send(settings, items)
            assert sum(pipeline.end_offsets(settings).values()) == 200
            pipeline.wait_caught_up(settings)
            twice = pipeline.snapshot(settings)
            assert worker.proc.poll() is None
            # the relay publishes each change once, not once per delivery
            deadline = time.monotonic() + 30
            while len(published := read_topic(settings, settings.changes_topic, 1000)) < len(once.cursors):
                assert time.monotonic() < deadline, f"{len(published)} of {len(once.cursors)} changes published"
        finally:
            worker.stop()
        assert len(once.releases) == 100 and once.changes
        assert twice == once
        assert pipeline.count(settings, "rejected") == 0
        assert sorted(int(m.headers["cursor"]) for m in published) == list(once.cursors)  # projects' too


def test_every_change_is_indexed_by_its_buyer_and_suppliers(clean: Clean) -> None:
    """The worker fills change_keys (the per-buyer, per-supplier and per-project feeds' index) with each change's
    buyer, supplier and project ids, exactly as its event's summary names them."""
    events = pipeline.query(clean.settings, "SELECT cursor, event FROM changes")
    want = {(field, value, cursor) for cursor, event in events
            for field, value in writer.change_keys(orjson.loads(event)["summary"])}
    got = set(pipeline.query(clean.settings, "SELECT field, value, cursor FROM change_keys"))
    assert {field for field, _, _ in want} == {"buyer", "supplier", "project"}
    assert len({cursor for _, _, cursor in want}) > len(events) // 2
    assert got == want


def test_every_search_vector_is_made_from_its_records_current_text(clean: Clean) -> None:
    """A record's search vector is the Spanish to_tsvector of its current search text, also where the worker
    kept the stored vector because a release changed no text."""
    rows = pipeline.query(clean.settings, "SELECT ocid, search::text FROM records ORDER BY ocid")
    compiled = pipeline.compiled_releases(clean.settings)
    texts = [writer.unaccent(str(summarize(orjson.loads(compiled[ocid]))["search_text"])) for ocid, _ in rows]
    want = pipeline.query(clean.settings, "SELECT to_tsvector('spanish', t)::text FROM unnest(%s::text[]) "
                          "WITH ORDINALITY AS u(t, n) ORDER BY n", (texts,))
    assert len(rows) == len(want) > 500
    assert [search for _, search in rows] == [vector for (vector,) in want]


def test_every_served_compiled_release_is_ocdsmerges_of_its_stored_releases(clean: Clean, schema: OcdsSchema) -> None:
    """Records keep a checkpoint of their compiled release and the releases after it; brought up to date,
    each equals ocdsmerge's compiled release of all the record's stored releases."""
    behind = pipeline.query(clean.settings, "SELECT count(*) FROM records WHERE tail_bytes > 0")[0][0]
    assert behind > 50, "too few records with releases after their checkpoint: the test would prove little"
    by_ocid: dict[str, list[pipeline.Release]] = defaultdict(list)
    for ocid, data in pipeline.query(clean.settings, "SELECT ocid, data FROM releases"):
        by_ocid[ocid].append(orjson.loads(data))
    reference = ocdsmerge.Merger(schema=schema.release)
    served = pipeline.compiled_releases(clean.settings)
    assert served.keys() == by_ocid.keys()
    for ocid, releases in by_ocid.items():
        assert orjson.loads(served[ocid]) == reference.create_compiled_release(releases), ocid
