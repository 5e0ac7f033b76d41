"""``ocds-live load`` against the real broker: exactly what it was given, once, keyed, with headers."""

from __future__ import annotations

import base64
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from core.kafka import ReleaseProducer, ensure_topics, event_id
from core.settings import Settings
from producers.loader import read_releases
from producers.send import send_items
from tests.support.kafka import read_topic
from tests.support.stack import base_settings, cli, free_port, fresh_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings() -> Iterator[Settings]:
    with fresh_stack(base_settings()) as settings:
        yield settings


def _own_topic(settings: Settings, name: str) -> Settings:
    """The same stack with a releases topic of the test's own, so tests do not see each other's messages."""
    return settings.model_copy(update={"releases_topic": f"{settings.releases_topic}.{name}"})


def _real_files(real_data: Path) -> list[Path]:
    return sorted(p for p in real_data.rglob("*") if p.is_file())


def test_load_real_files_puts_each_release_on_the_topic_once(settings: Settings, real_data: Path) -> None:
    """Every release in the real files is on the topic exactly once, key = ocid, with the four headers."""
    own = _own_topic(settings, "real")
    files = _real_files(real_data)
    result = cli(own, "load", *map(str, files), "--publisher", "mx-test")
    assert result.returncode == 0, result.stderr + result.stdout

    expected: Counter[tuple[bytes, str]] = Counter()
    values: dict[str, bytes] = {}
    for path in files:
        for item in read_releases(str(path)):
            if item.value is not None and item.ocid is not None:
                eid = event_id(item.ocid, item.release_id or "", item.value)
                expected[(item.ocid.encode(), eid)] += 1
                values[eid] = item.value
    messages = read_topic(own, own.releases_topic)
    assert len(messages) == sum(expected.values()) == 477
    assert Counter((m.key or b"", m.headers["event-id"]) for m in messages) == expected
    for m in messages:
        assert m.value == values[m.headers["event-id"]]
        assert m.headers["publisher"] == "mx-test"
        assert m.headers["source"].startswith(f"load:{real_data}")
        assert m.headers["produced-at"].isdigit()
    lines = [line for line in result.stdout.splitlines() if line.startswith("  skipped ") and ":" in line]
    assert any("a linked release: only its URL is in the file" in line for line in lines)
    assert any("a compiled release, not a release" in line for line in lines)
    assert "skipped 138" in result.stdout  # INAI record 191 lists 138 linked releases


def test_jsonl_lines_arrive_byte_for_byte(settings: Settings, tmp_path: Path) -> None:
    """A JSON Lines release is on the topic as the very bytes of its line (no re-serialisation)."""
    own = _own_topic(settings, "bytes")
    lines = [b'{"ocid": "ocds-07smqs-9", "id": "1",   "date": "2024-01-01T00:00:00Z", "amount": 1.50}',
             b'{"id":"2","ocid":"ocds-07smqs-9","date":"2024-01-02T00:00:00Z"}']
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = cli(own, "load", str(path))
    assert result.returncode == 0, result.stderr
    messages = read_topic(own, own.releases_topic)
    assert sorted(m.value for m in messages) == sorted(lines)
    assert {m.key for m in messages} == {b"ocds-07smqs-9"}
    assert len({m.partition for m in messages}) == 1


def test_only_broken_lines_exits_non_zero_naming_the_lines(settings: Settings, tmp_path: Path) -> None:
    """A file of only broken lines sends nothing, exits 1 and lists each broken line's number."""
    own = _own_topic(settings, "broken")
    path = tmp_path / "broken.jsonl"
    path.write_bytes(b'{"ocid": "x",\nnot json\n\n{"id": 1\n')
    result = cli(own, "load", str(path))
    assert result.returncode == 1
    assert "sent 0 releases" in result.stdout
    for number in (1, 2, 4):
        assert f"broken: {path} line {number}: not JSON" in result.stdout
    assert read_topic(own, own.releases_topic, 1000) == []


def test_unreachable_broker_fails_fast_with_non_zero_exit(settings: Settings, real_data: Path) -> None:
    """With no broker at the configured address, load exits non-zero with a message, not a traceback."""
    offline = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    started = time.monotonic()
    result = cli(offline, "load", str(real_data / "mx-apf.releases.jsonl"), timeout=90)
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert "cannot reach Kafka" in result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < 20, f"took {elapsed:.0f}s"


def test_load_paths_reports_unreadable_inputs(settings: Settings, tmp_path: Path, real_data: Path) -> None:
    """A path that cannot be read is reported and makes the exit code 1; the readable ones are still sent."""
    import io

    from producers.send import load_paths

    own = _own_topic(settings, "paths")
    out = io.StringIO()
    code = load_paths(own, [str(tmp_path / "missing.jsonl"), str(real_data / "mx-apf.releases.jsonl")],
                      publisher="bulk", out=out, progress=False)
    assert code == 1
    assert "missing.jsonl: cannot read: No such file or directory" in out.getvalue()
    assert len(read_topic(own, own.releases_topic)) == 2


def test_send_items_refusal_raises_broker_error(settings: Settings) -> None:
    """A release larger than the broker accepts raises BrokerError naming where it came from."""
    from core.exceptions import BrokerError
    from producers.loader import Item

    own = _own_topic(settings, "refused")
    ensure_topics(own)
    producer = ReleaseProducer(own, client_id="test-refused", max_request_size=64 * 1024 * 1024)
    noise = base64.b64encode(os.urandom(own.max_release_bytes + 2 * 2**20)).decode()  # zstd cannot shrink it
    value = orjson.dumps({"ocid": "ocds-07smqs-1", "id": "1", "x": noise})
    try:
        with pytest.raises(BrokerError, match="big.jsonl line 1"):
            send_items([Item("big.jsonl", "line 1", value, "ocds-07smqs-1", "1")], producer,
                       publisher="bulk", source="test", progress=False, timeout=20)
    finally:
        producer.close()


def test_simulate_out_then_load_delivers_every_simulated_release(settings: Settings, tmp_path: Path) -> None:
    """``simulate --out FILE`` then ``load FILE`` puts every simulated release on the topic once, as written."""
    own = _own_topic(settings, "sim")
    path = tmp_path / "sim.jsonl"
    written = cli(own, "simulate", "--processes", "30", "--seed", "7", "--out", str(path))
    assert written.returncode == 0, written.stderr
    lines = [line for line in path.read_bytes().splitlines() if line]
    result = cli(own, "load", str(path), "--publisher", "simulator")
    assert result.returncode == 0, result.stderr
    messages = read_topic(own, own.releases_topic)
    assert sorted(m.value for m in messages) == sorted(lines)
    for m in messages:
        release = orjson.loads(m.value)
        assert m.key == release["ocid"].encode()
        assert m.headers["event-id"] == event_id(release["ocid"], release["id"], m.value)
