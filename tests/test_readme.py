"""The README's examples run as written against the real stack."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.kafka import ensure_topics
from core.kafka import event_id as kafka_event_id
from tests.support import pipeline
from tests.support.kafka import read_topic
from tests.support.stack import REPO, Process, base_settings, env_for, fresh_stack

pytestmark = pytest.mark.integration


def _python_block(section: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", body, re.S)
    assert match, f"no python example under '## {section}'"
    return match.group(1)


def test_writing_to_kafka_directly(tmp_path: Path) -> None:
    """The kafka-python example puts a release on the topic with the contract's key and headers, and the
    stream processor accepts it under the publisher it names, with the event id it sent."""
    code = _python_block("Writing to Kafka directly")
    with fresh_stack(base_settings()) as settings:
        ensure_topics(settings)
        worker = Process(settings, "process", log=tmp_path / "worker.log")
        try:
            run = subprocess.run([sys.executable, "-c", code], env=env_for(settings), capture_output=True,
                                 text=True, timeout=60, check=False)
            assert run.returncode == 0, run.stderr
            event_id = run.stdout.split("event ")[-1].strip()
            pipeline.wait_caught_up(settings)
        finally:
            worker.stop()
        [message] = read_topic(settings, settings.releases_topic)
        assert message.key == b"ocds-07smqs-DIRECT-1"
        assert set(message.headers) == {"publisher", "source", "event-id", "produced-at"}
        assert message.headers["event-id"] == event_id == kafka_event_id(
            "ocds-07smqs-DIRECT-1", "ocds-07smqs-DIRECT-1-tender-1", message.value)
        rows = pipeline.query(settings, "SELECT publisher, findings::text FROM releases")
        assert [r[0] for r in rows] == ["shcp"]
        assert pipeline.count(settings, "rejected") == 0
        events = pipeline.query(settings, "SELECT event::jsonb ->> 'id' FROM changes")
        assert events == [(event_id,)]
