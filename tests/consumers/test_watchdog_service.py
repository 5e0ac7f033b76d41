"""``ocds-live watch --service`` on the real Kafka and PostgreSQL: two instances share the change topic, one is
killed (kill -9) mid-stream and replaced, and every alert is stored exactly once; a replay of the topic from its
start stores and delivers nothing new."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg2
import pytest

from core.kafka import ensure_topics
from core.merge import RecordMerger
from core.schema import OcdsSchema
from core.settings import Settings
from streams.relay import Relay
from tests.feed_server.test_api import StoreWriter
from tests.support.stack import Process, base_settings, fresh_stack
from tests.support.watchdog import (
    active_alerts,
    alert_events,
    assert_each_alert_once,
    expected_alerts,
    raised_counts,
    rules_for_tests,
    rules_text,
    simulated,
)

pytestmark = pytest.mark.integration

RULES = rules_text()


def consumed(settings: Settings) -> tuple[int, int]:
    """(messages the group has stored offsets past, changes in the log)."""
    conn = psycopg2.connect(settings.database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE consumer_group = %s",
                        (settings.watchdog_group_id,))
            (done,) = cur.fetchone() or (0,)
            cur.execute("SELECT count(*) FROM changes")
            (total,) = cur.fetchone() or (0,)
            return int(done), int(total)
    finally:
        conn.close()


def wait_caught_up(settings: Settings, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        done, total = consumed(settings)
        if done == total > 0:
            return
        assert time.monotonic() < deadline, f"the watchdog consumed {done} of {total} changes"
        time.sleep(0.5)


def test_kill_9_and_a_rebalance_store_every_alert_once_and_a_replay_adds_nothing(
        schema: OcdsSchema, tmp_path: Path) -> None:
    """Alerts equal the rules' verdicts on the final records, each raised once, through kill -9 and rebalances."""
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES, encoding="utf-8")
    with fresh_stack(base_settings(), redflags_file=rules) as settings:
        ensure_topics(settings)
        relay = Relay(settings, lambda: psycopg2.connect(settings.database_url))
        relay.start()
        store = StoreWriter(settings, schema, versioned=False)
        releases = simulated(500, seed=5)
        chunks = [releases[i:i + 150] for i in range(0, len(releases), 150)]
        logs = {name: tmp_path / f"{name}.log" for name in ("a", "b", "c", "d")}
        a = Process(settings, "-v", "watch", "--service", log=logs["a"])
        b = Process(settings, "-v", "watch", "--service", log=logs["b"])
        c = d = None
        try:
            store.write(chunks[0])
            deadline = time.monotonic() + 60
            while consumed(settings)[0] == 0:  # the group formed and stored a batch
                assert time.monotonic() < deadline, a.output() + b.output()
                time.sleep(0.2)
            for chunk in chunks[1:3]:
                store.write(chunk)
            a.kill()  # mid-stream: its partitions move to b, and to c when it joins
            c = Process(settings, "-v", "watch", "--service", log=logs["c"])
            for chunk in chunks[3:]:
                store.write(chunk)
                time.sleep(0.5)
            wait_caught_up(settings)
            events = alert_events(settings)
            assert_each_alert_once(events)
            want = expected_alerts(settings, RecordMerger(schema, versioned=False), rules_for_tests())
            assert active_alerts(settings) == want and len(want) > 10
            assert set(raised_counts(events).values()) == {1}
            assert "partitions assigned" in a.output() and "partitions assigned" in b.output()

            b.stop()
            c.stop()
            conn = psycopg2.connect(settings.database_url)
            with conn.cursor() as cur:  # replay: the group forgets how far it read
                cur.execute("DELETE FROM consumer_offsets WHERE consumer_group = %s", (settings.watchdog_group_id,))
            conn.commit()
            conn.close()
            d = Process(settings, "watch", "--service", log=logs["d"])
            wait_caught_up(settings)
            assert alert_events(settings) == events
        finally:
            for proc in (a, b, c, d):
                if proc is not None:
                    proc.stop()
            store.close()
            relay.stop()
