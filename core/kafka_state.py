"""What Kafka holds, as operators ask: end offsets per partition, committed offsets per group, the coordinator.

kafka-python's errors become :class:`~core.exceptions.BrokerError` here, at the boundary.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from core.exceptions import BrokerError, BrokerUnavailableError
from core.settings import Settings

COORDINATOR_LOGGER = "aiokafka.consumer.group_coordinator"
SELECTOR_LOGGER = "kafka.net.selector"
BOOTSTRAP_TIMEOUT_MS = 5_000  # an unreachable broker is reported in seconds, not kafka-python's 30


@contextmanager
def _admin(settings: Settings) -> Iterator[Any]:
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=10_000,
                                 bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    except KafkaError as exc:
        raise BrokerUnavailableError(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}; "
                                     "start it with `ocds-live services up` or pass --bootstrap-servers") from exc
    try:
        yield admin
    except KafkaError as exc:
        raise BrokerError(f"kafka at {settings.kafka_bootstrap_servers} refused a request: {exc}") from exc
    finally:
        admin.close()


def wait_for_coordinator(settings: Settings, group: str, timeout: float = 60.0) -> float:
    """Wait until Kafka names a coordinator for ``group``; return the seconds waited.

    On a fresh broker the first group lookup creates ``__consumer_offsets``, and until it has a leader
    every lookup answers "coordinator not available". Faust's consumer (aiokafka) logs each of those as an
    ERROR although it retries; waiting here first keeps a healthy start free of them.
    """
    from kafka.errors import KafkaError

    started = time.monotonic()
    with _admin(settings) as admin:
        while True:
            try:
                admin.list_group_offsets({group: None})
                return time.monotonic() - started
            except KafkaError as exc:
                if not getattr(exc, "retriable", False) or time.monotonic() - started > timeout:
                    raise BrokerError(f"kafka names no coordinator for the group {group!r} after "
                                      f"{time.monotonic() - started:.0f}s: {exc}") from exc
                time.sleep(0.25)


class RetriedCoordinatorLookups(logging.Filter):
    """Logs aiokafka's retried coordinator lookups as warnings: they are retried, not failed."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if record.levelno == logging.ERROR and args and getattr(args[0], "retriable", False):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class SlowSteps(logging.Filter):
    """kafka-python's "Task … ran for 0.117s (>0.100s threshold)" is a timing diagnostic of its own network
    loop (like asyncio's slow-callback warning), printed whenever the CPU is busy: shown with -v only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and "threshold). It is blocking the event loop" in str(record.msg):
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger().isEnabledFor(logging.INFO)
        return True


def route_library_logs() -> None:
    """Install the filters above on the Kafka clients' loggers (idempotent)."""
    for name, kind in ((COORDINATOR_LOGGER, RetriedCoordinatorLookups), (SELECTOR_LOGGER, SlowSteps)):
        target = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in target.filters):
            target.addFilter(kind())


def end_offsets(settings: Settings, topics: Iterable[str]) -> dict[str, dict[int, int]]:
    """The end offset of every partition of ``topics`` (a missing topic maps to {})."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None,
                                 enable_auto_commit=False, request_timeout_ms=10_000,
                                 bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    except KafkaError as exc:
        raise BrokerUnavailableError(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}") from exc
    try:
        result: dict[str, dict[int, int]] = {}
        for topic in topics:
            partitions = consumer.partitions_for_topic(topic) or set()
            ends = consumer.end_offsets([TopicPartition(topic, p) for p in sorted(partitions)]) if partitions else {}
            result[topic] = {tp.partition: int(offset) for tp, offset in sorted(ends.items())}
        return result
    except KafkaError as exc:
        raise BrokerError(f"cannot read end offsets from {settings.kafka_bootstrap_servers}: {exc}") from exc
    finally:
        consumer.close()


def committed_offsets(settings: Settings, topics: Iterable[str]) -> dict[str, dict[tuple[str, int], int]]:
    """The offsets each consumer group committed to Kafka on ``topics``: group -> (topic, partition) -> offset."""
    wanted = set(topics)
    with _admin(settings) as admin:
        groups = [g.get("group_id") or g.get("group") for g in admin.list_groups()]
        names = sorted(str(g) for g in groups if g)
        if not names:
            return {}
        offsets = admin.list_group_offsets({name: None for name in names})
    result: dict[str, dict[tuple[str, int], int]] = {}
    for group, committed in offsets.items():
        mine = {(tp.topic, tp.partition): int(meta.offset) for tp, meta in committed.items()
                if tp.topic in wanted and meta.offset >= 0}
        if mine:
            result[group] = mine
    return result
