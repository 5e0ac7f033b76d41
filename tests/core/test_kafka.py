"""The producer side's pure helpers: partitioning and event ids."""

from __future__ import annotations

from kafka.cluster import ClusterMetadata
from kafka.partitioner.default import DefaultPartitioner

from core.kafka import KeyHashCache, event_id


class _Cluster(ClusterMetadata):  # type: ignore[misc]
    """Just enough metadata for a partitioner: one topic with ``count`` partitions."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def topics(self, exclude_internal_topics: bool = True) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.count))

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.count))


def test_key_hash_cache_assigns_the_same_partitions_as_kafka_pythons_default_partitioner() -> None:
    """Caching the hash of a key changes no partition (the Java client's murmur2 assignment)."""
    cached, reference = KeyHashCache(), DefaultPartitioner()
    keys = [f"ocds-07smqs-{n:07d}".encode() for n in range(0, 3000, 7)] + [b"", b"a", "acción".encode()]
    for count in (1, 3, 12):
        cluster = _Cluster(count)
        for key in keys * 2:  # the second time from the cache
            assert cached.partition("t", key, key, None, None, cluster) == \
                reference.partition("t", key, key, None, None, cluster)


def test_event_id_is_stable_and_depends_on_ocid_release_id_and_content() -> None:
    """The same release gives the same event id; another ocid, id or content gives another."""
    value = b'{"ocid": "a", "id": "1"}' * 200
    assert event_id("a", "1", value) == event_id("a", "1", value)
    assert len({event_id("a", "1", value), event_id("b", "1", value), event_id("a", "2", value),
                event_id("a", "1", value + b" ")}) == 4
