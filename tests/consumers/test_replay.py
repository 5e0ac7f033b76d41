"""``ocds-live replay``: a store rebuilt from the releases topic equals the store the live worker built."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from consumers.replay import ReplayError, TargetNotEmptyError, replay
from core.kafka import OutgoingRelease
from core.settings import Settings
from tests.corpus.bad_releases import bad_inputs
from tests.support import pipeline
from tests.support.kafka import read_topic
from tests.support.stack import Process, base_settings, fresh_stack

pytestmark = pytest.mark.integration


def test_replayed_store_equals_the_original(tmp_path: Path) -> None:
    """A replay into an empty database (two workers sharing the topic's partitions) rebuilds the same store,
    publishes nothing again, and then refuses to rerun."""
    good = pipeline.outgoing(pipeline.simulated(seed=3, count=2000, processes=400))
    bad = [OutgoingRelease(f"bad-{label}", label, raw, "simulator", "test")
           for label, raw in bad_inputs()[:20]]
    items = good[:1000] + bad + good[1000:]
    with fresh_stack(base_settings(), batch_size=200) as original:
        worker = Process(original, "process", log=tmp_path / "worker.log")
        try:
            pipeline.send(original, items)
            pipeline.wait_caught_up(original)
            snap = pipeline.snapshot(original)
            published = _wait_published(original.changes_topic, len(snap.cursors), original)
        finally:
            worker.stop()
        with fresh_stack(base_settings(), releases_topic=original.releases_topic) as target:
            log = io.BytesIO()
            calls: list[tuple[int, int]] = []
            with (tmp_path / "replay.log").open("wb") as out:
                summary = replay(original, database_url=target.database_url, group=None, log=out, workers=2,
                                 progress=lambda done, total: calls.append((done, total)))
            print(f"\n{summary.report()}")
            # how many project.updated events a run writes depends on where its batches began (see pipeline.py)
            rebuilt = pipeline.snapshot(target)
            assert (summary.releases, summary.records, summary.changes, summary.rejected, summary.offsets) == (
                2000, len(snap.records), len(rebuilt.cursors), 20, len(items))
            assert summary.workers == 2 and "2 workers" in summary.report()
            assert calls[-1] == (len(items), len(items))
            pipeline.assert_same_store(rebuilt, snap)
            assert pipeline.count(target, "rejected") == 20

            # the rebuilt history is not sent to subscribers again, now or by a later worker
            assert len(read_topic(original, original.changes_topic, 1000)) == len(published)
            progress = dict(pipeline.query(target, "SELECT name, last FROM relay_progress"))
            assert progress == {"changes": len(rebuilt.cursors), "rejected": max(
                r[0] for r in pipeline.query(target, "SELECT id FROM rejected"))}

            with pytest.raises(TargetNotEmptyError, match="--force"):
                replay(original, database_url=target.database_url, group=None, log=log)


def test_replay_refuses_a_group_that_already_consumed(tmp_path: Path) -> None:
    """A consumer group with committed offsets would not start from the beginning: replay refuses it."""
    with fresh_stack(base_settings()) as settings:
        worker = Process(settings, "process", log=tmp_path / "worker.log")
        try:
            pipeline.send(settings, pipeline.outgoing(pipeline.simulated(seed=5, count=20, processes=10)))
            pipeline.wait_caught_up(settings)
            deadline = time.monotonic() + 30
            while not _committed(settings, settings.app_id):  # Faust commits every second
                assert time.monotonic() < deadline, "the worker never committed its offsets"
                time.sleep(0.5)
        finally:
            worker.stop()
        with fresh_stack(base_settings(), releases_topic=settings.releases_topic) as target, \
                pytest.raises(ReplayError, match="new --group"):
            replay(settings, database_url=target.database_url, group=settings.app_id, log=io.BytesIO())


def _committed(settings: Settings, group: str) -> bool:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        committed = admin.list_group_offsets({group: None}).get(group) or {}
        return any(meta.offset > 0 for meta in committed.values())
    finally:
        admin.close()


def _wait_published(topic: str, expected: int, settings: Settings) -> list[object]:
    deadline = time.monotonic() + 60
    while len(messages := read_topic(settings, topic, 1000)) < expected:
        assert time.monotonic() < deadline, f"the relay published {len(messages)} of {expected} changes"
    return list(messages)
