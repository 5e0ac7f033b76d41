"""Bad input is data: every entry of the corpus of bad releases, interleaved with valid ones, ends in
the ``rejected`` table and on the rejected topic with its reason, and the stream never stalls."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.kafka import OutgoingRelease
from tests.corpus.bad_releases import bad_inputs
from tests.support import pipeline
from tests.support.kafka import Message, read_topic
from tests.support.stack import Process, base_settings, fresh_stack

pytestmark = pytest.mark.integration

GOOD = 1000
EVERY = 7  # one bad input after every 7 good releases


def _key(label: str, raw: bytes) -> str:
    """The ocid when one can be read, as a producer would key it; otherwise the label."""
    try:
        value: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return f"bad-{label}"
    ocid = value.get("ocid") if isinstance(value, dict) else None
    return ocid if isinstance(ocid, str) and ocid else f"bad-{label}"


def _reasons(findings: list[dict[str, Any]]) -> list[str]:
    return [f"{f['rule']}: {f['message']}" for f in findings if f.get("rule") and f.get("message")]


def test_bad_inputs_are_rejected_with_reasons_and_the_stream_goes_on(tmp_path: Path) -> None:
    """133 bad inputs among 1,000 good: each rejected with a reason (table and topic), each good one stored."""
    bad = bad_inputs()
    assert len(bad) == 133
    seconds = check_bad_inputs(bad, tmp_path)
    assert seconds < 120, f"{GOOD + len(bad)} messages took {seconds:.0f}s"


def test_a_nul_character_in_a_key_does_not_stall_the_stream(tmp_path: Path) -> None:
    """A release rejected for a NUL character in a key is dead-lettered, and the releases after it are stored."""
    bad = [(label, raw) for label, raw in bad_inputs() if label == "null-escape-in-key"]
    assert len(bad) == 1
    check_bad_inputs(bad, tmp_path, good_count=EVERY, timeout=30)


def check_bad_inputs(bad: list[tuple[str, bytes]], tmp_path: Path, good_count: int = GOOD,
                     timeout: float = 60) -> float:
    """Send ``bad`` interleaved with valid releases; check where each went; return the seconds taken."""
    good = pipeline.simulated(seed=11, count=good_count, processes=max(1, good_count // 5))
    items: list[OutgoingRelease] = []
    labels: list[str | None] = []  # None: a good release
    corpus = iter(bad)
    for n, release in enumerate(pipeline.outgoing(good)):
        items.append(release)
        labels.append(None)
        if n % EVERY == EVERY - 1 and (entry := next(corpus, None)) is not None:
            label, raw = entry
            items.append(OutgoingRelease(_key(label, raw), label, raw, "simulator", "test"))
            labels.append(label)
    for label, raw in corpus:
        items.append(OutgoingRelease(_key(label, raw), label, raw, "simulator", "test"))
        labels.append(label)
    assert labels.count(None) == good_count and len(items) == good_count + len(bad)

    with fresh_stack(base_settings(), batch_size=200) as settings:
        worker = Process(settings, "process", log=tmp_path / "worker.log")
        try:
            started = time.monotonic()
            where = pipeline.send(settings, items)
            pipeline.wait_caught_up(settings, timeout=timeout)
            seconds = time.monotonic() - started
            print(f"\n{len(items)} messages ({len(bad)} bad) processed in {seconds:.1f}s")
            messages = _wait_rejected_topic(settings.rejected_topic, len(bad), settings)
            assert worker.proc.poll() is None, worker.output()[-3000:]
        finally:
            worker.stop()

        expected_bad = {where[i]: (label, items[i].value) for i, label in enumerate(labels) if label is not None}
        rows = pipeline.query(settings, "SELECT source_topic, source_partition, source_offset, findings::text, raw "
                              "FROM rejected")
        stored = {(int(p), int(o)): (t, orjson.loads(f), bytes(raw)) for t, p, o, f, raw in rows}
        assert set(stored) == set(expected_bad), (
            f"not rejected: {sorted(expected_bad[w][0] for w in set(expected_bad) - set(stored))}; "
            f"good ones rejected: {len(set(stored) - set(expected_bad))}")
        for at, (label, raw) in expected_bad.items():
            topic, findings, kept = stored[at]
            assert topic == settings.releases_topic and kept == raw, label
            assert _reasons(findings), f"{label}: no reason in {findings}"

        assert pipeline.query(settings, "SELECT ocid, release_id FROM releases ORDER BY 1, 2") == sorted(
            (r["ocid"], r["id"]) for r in good)

        published = {(int(m.headers["source-partition"]), int(m.headers["source-offset"])): m for m in messages}
        assert set(published) == set(expected_bad)
        for at, (label, raw) in expected_bad.items():
            message = published[at]
            assert message.headers["source-topic"] == settings.releases_topic, label
            assert message.value == raw, label
            assert _reasons(orjson.loads(message.headers["findings"])), label
    return seconds


def _wait_rejected_topic(topic: str, expected: int, settings: Any, timeout: float = 60) -> list[Message]:
    deadline = time.monotonic() + timeout
    while True:
        messages = read_topic(settings, topic, timeout_ms=2000)
        if len(messages) >= expected or time.monotonic() > deadline:
            return messages
