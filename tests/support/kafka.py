"""Reading back what is on a topic, for tests."""

from __future__ import annotations

from dataclasses import dataclass

from core.kafka import headers_dict
from core.settings import Settings


@dataclass(frozen=True)
class Message:
    key: bytes | None
    value: bytes
    headers: dict[str, str]
    partition: int
    offset: int


def read_topic(settings: Settings, topic: str, timeout_ms: int = 3000) -> list[Message]:
    """Every message on ``topic`` from the beginning (stops after ``timeout_ms`` without new ones)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap_servers,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=timeout_ms, group_id=None)
    try:
        return [Message(m.key, m.value, headers_dict(m.headers), m.partition, m.offset) for m in consumer]
    finally:
        consumer.close()
