"""The one producer API every door uses, topic creation, and the headers releases carry.

kafka-python: idempotent, ``acks=all``, key = ocid (one process stays on one partition), zstd.
kafka-python's errors become :class:`~core.exceptions.BrokerError` here, at the boundary.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from kafka.partitioner.default import DefaultPartitioner, murmur2

from core.exceptions import BrokerError, BrokerUnavailableError
from core.settings import Settings

logger = logging.getLogger("ocds_live.kafka")

HEADER_PUBLISHER = "publisher"
HEADER_SOURCE = "source"
HEADER_EVENT_ID = "event-id"
HEADER_PRODUCED_AT = "produced-at"
HEADER_EXTENSIONS = "extensions"  # the extension URLs the release's package declares, as a JSON array


def parse_extensions(header: str | None) -> tuple[str, ...]:
    """The extension URLs of an ``extensions`` header (a JSON array of strings); anything else declares none."""
    if not header:
        return ()
    try:
        urls = json.loads(header)
    except ValueError:
        return ()
    return tuple(u for u in urls if isinstance(u, str) and u) if isinstance(urls, list) else ()


def event_id(ocid: str, release_id: str, value: bytes) -> str:
    """A stable id for one release event: the same release sent twice gets the same id."""
    digest = hashlib.sha256(f"{ocid}\x00{release_id}\x00".encode())
    # pieces under 2,048 bytes: above that hashlib releases the GIL, and getting it back from
    # kafka-python's sender thread cost more than the hashing itself
    view = memoryview(value)
    for i in range(0, len(view), 2047):
        digest.update(view[i : i + 2047])
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class OutgoingRelease:
    """One release ready for ``ocds.releases``."""

    ocid: str
    release_id: str
    value: bytes
    publisher: str
    source: str
    extensions: tuple[str, ...] = ()  # what the release's package declares

    @property
    def event_id(self) -> str:
        return event_id(self.ocid, self.release_id, self.value)

    def headers(self) -> list[tuple[str, bytes]]:
        headers = [
            (HEADER_PUBLISHER, self.publisher.encode()),
            (HEADER_SOURCE, self.source.encode()),
            (HEADER_EVENT_ID, self.event_id.encode()),
            (HEADER_PRODUCED_AT, str(int(time.time() * 1000)).encode()),
        ]
        if self.extensions:
            headers.append((HEADER_EXTENSIONS, json.dumps(list(self.extensions)).encode()))
        return headers


def headers_dict(headers: Iterable[tuple[str, bytes]] | dict[str, bytes] | None) -> dict[str, str]:
    """Kafka headers as a str→str dict (last one wins)."""
    if not headers:
        return {}
    items = headers.items() if isinstance(headers, dict) else headers
    return {k: (v.decode("utf-8", "replace") if isinstance(v, bytes | bytearray) else str(v)) for k, v in items}


@lru_cache(maxsize=65_536)
def _key_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


class KeyHashCache(DefaultPartitioner):  # type: ignore[misc]  # kafka-python has no type hints
    """kafka-python's default partitioner (Java's murmur2 of the key), remembering the hashes of recent keys.

    Its murmur2 is pure Python (about 10 µs for an ocid); one process sends many events under the same
    ocid, so the hash of a key is computed once. Partitions are the same as the Java client's.
    """

    def partition(self, topic: str, key: Any, serialized_key: bytes | None, value: Any,
                  serialized_value: Any, cluster: Any) -> int:
        if serialized_key is None or topic not in cluster.topics():
            return int(super().partition(topic, key, serialized_key, value, serialized_value, cluster))
        partitions = sorted(cluster.partitions_for_topic(topic))
        return int(partitions[_key_hash(bytes(serialized_key)) % len(partitions)])


class ReleaseProducer:
    """Puts releases on the releases topic and returns only once Kafka acknowledged them.

    A producer whose releases were not acknowledged in time is replaced by a new one before the next send.
    kafka-python's idempotent producer, once batches that were in flight when the broker crashed have expired,
    never sends again (every later flush times out, seen in bench/soak.py's broker crash and reproduced by
    ``tests/core/test_kafka_broker_crash.py``): a long-lived sender (the ingest endpoint, ``simulate``, a
    retrying loop) would stay stuck after a broker restart. Releases the old producer still held were not
    acknowledged, so their caller already knows to send them again.
    """

    def __init__(self, settings: Settings, *, client_id: str = "ocds-live", **overrides: Any) -> None:
        self.topic = settings.releases_topic
        self._servers = settings.kafka_bootstrap_servers
        self._options: dict[str, Any] = {
            "bootstrap_servers": settings.kafka_bootstrap_servers,
            "client_id": client_id,
            "acks": "all",
            "enable_idempotence": True,
            "compression_type": "zstd",
            "partitioner": KeyHashCache(),
            "linger_ms": 5,
            "batch_size": 256 * 1024,
            "max_request_size": settings.max_release_bytes + 1024 * 1024,
            "request_timeout_ms": 10_000,
            "delivery_timeout_ms": 30_000,
            "max_block_ms": 10_000,
            "bootstrap_timeout_ms": 10_000,
        }
        self._options.update(overrides)
        self.replaced = 0  # producers replaced after unacknowledged releases
        self._producer: Any = self._connect()

    def _connect(self) -> Any:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        try:
            return KafkaProducer(**self._options)
        except KafkaError as exc:
            raise BrokerUnavailableError(
                f"cannot reach Kafka at {self._servers}: {exc}; start it with `ocds-live services up`"
            ) from exc

    def _current(self) -> Any:
        if self._producer is None:  # replaced after a timeout: connect again (raises while the broker is away)
            self._producer = self._connect()
        return self._producer

    def discard(self) -> None:
        """Drop the current producer and what it still holds unacknowledged; the next send connects anew."""
        producer, self._producer = self._producer, None
        if producer is not None:
            self.replaced += 1
            logger.warning("replacing the Kafka producer %s after releases it held were not acknowledged in time",
                           self._options["client_id"])
            force_close(producer)

    def send(self, release: OutgoingRelease, topic: str | None = None) -> Any:
        """Queue one release; returns kafka-python's future (call ``.get()`` to wait for the ack)."""
        from kafka.errors import KafkaError

        try:
            return self._current().send(
                topic or self.topic, key=release.ocid.encode(), value=release.value, headers=release.headers()
            )
        except KafkaError as exc:
            raise BrokerUnavailableError(f"kafka refused ocid={release.ocid}: {exc}") from exc

    def send_all(self, releases: Sequence[OutgoingRelease], timeout: float = 30.0) -> list[Any]:
        """Send every release and wait until Kafka acknowledged each (acks=all); return their metadata.

        On a timeout the producer is replaced (see the class), so that sending again can succeed."""
        from kafka.errors import KafkaError, KafkaTimeoutError

        futures = [self.send(r) for r in releases]
        try:
            self._current().flush(timeout=timeout)
            return [f.get(timeout=timeout) for f in futures]
        except KafkaTimeoutError as exc:
            self.discard()
            raise BrokerUnavailableError(f"kafka did not acknowledge within {timeout:.0f}s: {exc}") from exc
        except KafkaError as exc:
            raise BrokerError(f"kafka refused a release: {exc}") from exc

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything sent was acknowledged or failed; BrokerUnavailableError after ``timeout``."""
        from kafka.errors import KafkaTimeoutError

        try:
            self._current().flush(timeout=timeout)
        except KafkaTimeoutError as exc:
            self.discard()
            raise BrokerUnavailableError(f"kafka did not acknowledge within {timeout}s: {exc}") from exc

    def close(self, timeout: float = 10.0) -> None:
        """Flush for at most ``timeout`` seconds, then close; what is still unacknowledged then is dropped
        (logged: its senders were not told it was acknowledged)."""
        from kafka.errors import KafkaTimeoutError

        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=timeout)
        except KafkaTimeoutError:
            logger.warning("closed the Kafka producer %s with releases it could not deliver within %ss",
                           self._options["client_id"], timeout)
            force_close(producer)


def force_close(producer: Any, timeout: float = 0.0) -> None:
    """Close a kafka-python producer within ``timeout`` seconds, dropping what it could not deliver by then.
    Its own ``close`` flushes first and raises when that times out, leaving the sender thread running: stop
    that thread ourselves (``force_close``, kafka-python's own way out)."""
    from kafka.errors import KafkaTimeoutError

    with contextlib.suppress(KafkaTimeoutError):
        producer.close(timeout=timeout)
    sender = getattr(producer, "_sender", None)
    if sender is not None and sender.is_alive():
        sender.force_close()


def ensure_topics(settings: Settings) -> None:
    """Create ocds-live's topics if they do not exist (idempotent)."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=10_000,
                                 bootstrap_timeout_ms=10_000)
    except KafkaError as exc:
        raise BrokerUnavailableError(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}") from exc
    try:
        existing = set(admin.list_topics())
        big = str(settings.max_release_bytes + 1024 * 1024)
        wanted = {
            settings.releases_topic: {"retention.ms": "-1", "max.message.bytes": big},
            settings.rejected_topic: {"retention.ms": "-1", "max.message.bytes": str(2 * int(big))},
            settings.changes_topic: {"retention.ms": "-1"},
        }
        new = [
            NewTopic(name, num_partitions=settings.partitions, replication_factor=1, topic_configs=config)
            for name, config in wanted.items()
            if name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
    finally:
        admin.close()
