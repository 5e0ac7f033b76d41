"""The stream processor's record writes on a real database: the compiled release is stored as a checkpoint
that the releases after it bring up to date, and every reader and a worker that did not write it (empty
cache) get the same compiled release as ocdsmerge."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ocdsmerge
import orjson
import psycopg2
import pytest

from core.merge import RecordMerger
from core.publishers import load_publishers
from core.schema import OcdsSchema
from core.settings import Settings
from core.store import reader
from core.store.connection import connect
from producers.simulator import simulate
from streams.processor import BatchProcessor, Incoming
from tests.support.stack import base_settings, fresh_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def long_process() -> list[dict[str, Any]]:
    """One simulated process of ~80 releases, in date order (its compiled release grows with each)."""
    events = simulate(seed=5, processes=1, long_process_rate=1.0, long_process_releases=70)
    releases = [event.release for event in events]
    assert len(releases) >= 70 and len({r["ocid"] for r in releases}) == 1
    return releases


@pytest.fixture
def store() -> Iterator[Settings]:
    with fresh_stack(base_settings()) as settings:
        yield settings


class Feeder:
    """Sends releases to a BatchProcessor as messages of one partition, and reads what the store serves."""

    def __init__(self, settings: Settings, schema: OcdsSchema) -> None:
        self.settings, self.schema = settings, schema
        self.offset = 0
        self.processor = self.new_processor()
        self.compiler = RecordMerger(schema, versioned=False)
        self.conn = psycopg2.connect(settings.database_url)
        self.reference = ocdsmerge.Merger(schema=schema.release)

    def new_processor(self) -> BatchProcessor:
        return BatchProcessor(self.settings, self.schema, load_publishers(self.settings.publishers_file),
                              lambda: connect(self.settings))

    def send(self, *releases: dict[str, Any]) -> None:
        batch = []
        for release in releases:
            batch.append(Incoming("releases", 0, self.offset, orjson.dumps(release), {"publisher": "simulator"}))
            self.offset += 1
        result = self.processor.process(batch)
        assert result.accepted == len(releases) and result.rejected == 0, result

    def row(self, ocid: str) -> tuple[int | None, int, int]:
        """The record's checkpoint seq, tail bytes, and its releases' newest seq."""
        with self.conn.cursor() as cur:
            cur.execute("SELECT compiled_through, tail_bytes, (SELECT max(seq) FROM releases WHERE ocid = %s) "
                        "FROM records WHERE ocid = %s", (ocid, ocid))
            row = cur.fetchone()
        self.conn.commit()
        assert row is not None, f"no record for {ocid}"
        return row[0], row[1], row[2]

    def served(self, ocid: str) -> dict[str, Any]:
        compiled = reader.compiled(self.conn, ocid, self.compiler)
        assert compiled is not None
        page = reader.records_page(self.conn, 0, 1000, self.compiler)
        record = reader.record(self.conn, ocid, self.compiler)
        assert record is not None
        assert [r["compiled"] for _, r in page if r["ocid"] == ocid] == [compiled] == [record["compiled"]]
        return compiled

    def expected(self, releases: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(self.reference.create_compiled_release(releases))

    def close(self) -> None:
        self.processor.close()
        self.conn.close()


@pytest.fixture
def feeder(store: Settings, schema: OcdsSchema) -> Iterator[Feeder]:
    feeder = Feeder(store, schema)
    yield feeder
    feeder.close()


def test_a_growing_record_is_checkpointed_now_and_then_and_always_served_as_ocdsmerge_compiles_it(
    feeder: Feeder, long_process: list[dict[str, Any]],
) -> None:
    """One release per batch: the compiled release is written again only when the releases after the last
    checkpoint reach its size, and every reader serves ocdsmerge's compiled release after every release."""
    ocid = long_process[0]["ocid"]
    checkpoints, behind = [], 0
    for n, release in enumerate(long_process, start=1):
        feeder.send(release)
        through, tail, newest = feeder.row(ocid)
        if through == newest:
            assert tail == 0
            checkpoints.append(n)
        else:
            assert through is not None and through < newest and tail > 0
            behind += 1
        if n % 5 == 0 or n == len(long_process):
            assert feeder.served(ocid) == feeder.expected(long_process[:n]), f"after release {n}"
    # a small record is written every time; as it grows, checkpoints come further apart
    gaps = [b - a for a, b in zip(checkpoints, checkpoints[1:], strict=False)]
    assert checkpoints[0] == 1 and gaps[:3] == [1, 1, 1], checkpoints
    assert min(gaps[-3:]) >= 3, checkpoints
    assert behind > len(long_process) // 2, checkpoints


def test_a_worker_without_the_record_cached_continues_from_the_checkpoint_and_the_releases_after_it(
    feeder: Feeder, long_process: list[dict[str, Any]],
) -> None:
    """A worker that did not write the record (a restart, a rebalance) loads its checkpoint and the releases
    stored after it, and goes on merging to ocdsmerge's compiled release."""
    ocid = long_process[0]["ocid"]
    for n, release in enumerate(long_process, start=1):
        feeder.send(release)
        through, _, newest = feeder.row(ocid)
        if n > 20 and through != newest:
            break
    else:
        pytest.fail("the record never had releases after its checkpoint")
    feeder.processor.close()
    feeder.processor = feeder.new_processor()
    for release in long_process[n:]:
        feeder.send(release)
    assert feeder.served(ocid) == feeder.expected(long_process)


def test_a_release_out_of_date_order_is_merged_again_and_checkpointed(
    feeder: Feeder, long_process: list[dict[str, Any]],
) -> None:
    """A release older than the record's newest makes the worker merge all releases again, and write that
    compiled release as the checkpoint (the releases after a checkpoint must be in date order)."""
    ocid = long_process[0]["ocid"]
    held = long_process[30]
    for release in long_process[:30] + long_process[31:40]:
        feeder.send(release)
    assert feeder.row(ocid)[0] != feeder.row(ocid)[2], "the test needs releases after the checkpoint"
    feeder.send(held)
    through, tail, newest = feeder.row(ocid)
    assert through == newest and tail == 0
    assert feeder.served(ocid) == feeder.expected(long_process[:40])


def test_releases_of_one_process_in_one_batch_out_of_order_are_stored_in_merge_order(
    feeder: Feeder, long_process: list[dict[str, Any]],
) -> None:
    """A batch with a process's newer releases in any order (all after its newest) extends the record in
    date order, and stores them in that order: a reader applying them after the checkpoint agrees."""
    ocid = long_process[0]["ocid"]
    for n, release in enumerate(long_process, start=1):
        feeder.send(release)
        through, _, newest = feeder.row(ocid)
        if n >= 50 and through == newest:
            break  # just checkpointed: the next two releases follow it
    feeder.send(*reversed(long_process[n:n + 2]))
    through, _, newest = feeder.row(ocid)
    assert through is not None and through < newest, "the batch's releases must follow the checkpoint"
    assert feeder.served(ocid) == feeder.expected(long_process[:n + 2])
    feeder.processor.close()
    feeder.processor = feeder.new_processor()  # and a worker that loads them from the store
    feeder.send(long_process[n + 2])
    assert feeder.served(ocid) == feeder.expected(long_process[:n + 3])
