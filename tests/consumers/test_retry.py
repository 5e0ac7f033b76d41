"""``ocds-live rejected retry`` against the real stack: after a fix, dead letters are accepted, once each."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import psycopg2
import pytest

from consumers.retry import parse_since
from core.exceptions import ConfigurationError
from core.kafka import OutgoingRelease
from tests.support import pipeline
from tests.support.stack import Process, base_settings, cli, fresh_stack

pytestmark = pytest.mark.integration

PUBLISHERS = """# only the simulator at first
[[publisher]]
name = "simulator"
prefixes = ["ocds-07smqs"]
policy = "strict"
"""


def _release(n: int) -> dict[str, object]:
    return {"ocid": f"ocds-07smqs-retry-{n}", "id": f"r{n}", "date": "2024-01-01T00:00:00Z", "tag": ["planning"],
            "initiationType": "tender"}


def test_retry_after_registering_the_publisher(tmp_path: Path) -> None:
    """Releases of an unregistered publisher are accepted on retry once it is added; broken ones stay rejected
    with their reason; repeated dead letters are sent once; a second retry sends nothing accepted again."""
    publishers = tmp_path / "publishers.toml"
    publishers.write_text(PUBLISHERS)
    good = pipeline.outgoing(pipeline.simulated(seed=5, count=20, processes=5))
    newcomer = [OutgoingRelease(str(r["ocid"]), str(r["id"]), orjson.dumps(r), "newpub", "test")
                for r in map(_release, range(3))]
    broken = OutgoingRelease("ocds-07smqs-retry-x", "x", b'{"ocid": "ocds-07smqs-retry-x", ', "newpub", "test")
    with fresh_stack(base_settings(), publishers_file=publishers) as settings:
        worker = Process(settings, "process", log=tmp_path / "worker1.log")
        try:
            pipeline.send(settings, [*good, *newcomer, newcomer[0], broken])
            pipeline.wait_caught_up(settings)
        finally:
            worker.stop()
        assert pipeline.count(settings, "rejected") == 5
        assert "ERROR" not in worker.output(), worker.output()

        added = cli(settings, "publishers", "add", "newpub", "--prefix", "ocds-07smqs", "--policy", "lenient")
        assert added.returncode == 0, added.stderr
        worker = Process(settings, "process", log=tmp_path / "worker2.log")
        try:
            first = cli(settings, "rejected", "retry", "--publisher", "newpub", "--since", "1h", "--timeout", "90")
            assert first.returncode == 0, first.stderr
            assert first.stdout.startswith("retried 4 of 5 dead letters selected: 3 accepted now, "
                                           "1 still rejected, 0 already accepted, 0 not processed yet; "
                                           "not sent: 1 repeated, 0 already in the store"), first.stdout
            assert "json at /: the release is not JSON" in first.stdout

            only_json = cli(settings, "rejected", "retry", "--rule", "json", "--timeout", "90")
            assert only_json.returncode == 0, only_json.stderr
            assert "retried 1 of 1 dead letters selected: 0 accepted now, 1 still rejected" in only_json.stdout

            second = cli(settings, "rejected", "retry", "--publisher", "newpub", "--timeout", "90")
            assert second.returncode == 0, second.stderr
            assert "0 accepted now, 1 still rejected" in second.stdout
            assert "not sent: 3 repeated, 3 already in the store" in second.stdout, second.stdout
        finally:
            worker.stop()
        ids = {row[0] for row in pipeline.query(settings, "SELECT release_id FROM releases WHERE publisher = 'newpub'")}
        assert ids == {"r0", "r1", "r2"}
        changes = pipeline.query(settings, "SELECT release_id, count(*) FROM changes WHERE ocid LIKE "
                                 "'ocds-07smqs-retry-%%' GROUP BY release_id")
        assert sorted(changes) == [("r0", 1), ("r1", 1), ("r2", 1)]
        assert "ERROR" not in worker.output(), worker.output()


def test_without_a_worker_the_retry_says_what_is_pending() -> None:
    """With no stream processor running, retry sends each dead letter once, reports it pending and exits 4."""
    with fresh_stack(base_settings()) as settings:
        raw = orjson.dumps(_release(9))
        conn = psycopg2.connect(settings.database_url)
        with conn, conn.cursor() as cur:  # commits on leaving
            cur.execute("INSERT INTO rejected (publisher, findings, raw, source_topic, source_partition, "
                        "source_offset) VALUES ('simulator', '[]', %s, 't', 0, 1), ('simulator', '[]', %s, 't', 0, 2)",
                        (raw, raw))
        conn.close()
        done = cli(settings, "rejected", "retry", "--timeout", "2")
        assert done.returncode == 4, done.stderr
        assert done.stdout.startswith("retried 1 of 2 dead letters selected: 0 accepted now, 0 still rejected, "
                                      "0 already accepted, 1 not processed yet; not sent: 1 repeated"), done.stdout
        assert "is `ocds-live process` running?" in done.stdout
        assert sum(pipeline.end_offsets(settings).values()) == 1


def test_since_takes_a_time_or_an_age() -> None:
    """--since accepts ISO 8601 (naive means UTC) and ages in s, m, h, d; anything else says what to give."""
    now = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert parse_since("2h", now) == datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
    assert parse_since("1.5d", now) == datetime(2026, 1, 30, 0, 0, tzinfo=UTC)
    assert parse_since("2026-01-31T06:00:00-06:00", now) == now
    assert parse_since("2026-01-31T12:00", now) == now
    with pytest.raises(ConfigurationError, match="give an ISO 8601 time"):
        parse_since("yesterday", now)
