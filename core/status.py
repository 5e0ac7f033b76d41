"""The platform's state at a glance: ``ocds-live status``, ``GET /api/status`` and the status gauges of /metrics.

* Kafka: every partition of the three topics with its end offset.
* Lag per consumer group and partition: from the store's ``consumer_offsets`` (what the processors have
  committed *with* their writes, the authoritative progress) and from the offsets groups committed to Kafka.
* The store: rows per table, the change log's head and how far the relay has published it.
* Freshness over the last ``window`` seconds: the delay from a release's ``produced-at`` header to the store
  transaction that committed it, and from its ``date`` to that commit (publication), as p50/p99. The commit
  time is the transaction's start (PostgreSQL's ``now()``), earlier than the commit by the batch's
  processing time; ``produced-at`` is read from the topic for the releases stored in the window.

The pure parts (percentiles, lag, rendering) take plain values; :func:`gather` does the I/O.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.kafka import HEADER_PRODUCED_AT, headers_dict
from core.settings import Settings

SAMPLE = 2000  # releases at most whose freshness is measured
READ_SECONDS = 5.0  # reading produced-at headers from Kafka stops after this


@dataclass(frozen=True)
class Lag:
    group: str
    topic: str
    partition: int
    committed: int
    end: int
    source: str  # "store" (offsets committed with the writes) or "kafka" (the group's Kafka offsets)

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


@dataclass(frozen=True)
class Delay:
    """p50/p99 of a delay, in seconds, over ``samples`` releases (None: no sample)."""

    p50: float | None
    p99: float | None
    samples: int


@dataclass
class Status:
    taken_at: float
    topics: dict[str, dict[int, int]] = field(default_factory=dict)  # topic -> partition -> end offset
    lags: list[Lag] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    head: int = 0  # the change log's newest cursor
    head_at: str | None = None  # when it was written
    published: int = 0  # the newest cursor the relay has sent to the changes topic
    generation: int = 1  # the store's generation (`replay --switch` adds one)
    projects: int = 0  # infrastructure projects built
    projects_waiting: int = 0  # projects marked for the project builder, not rebuilt yet
    produced_to_commit: Delay = field(default_factory=lambda: Delay(None, None, 0))
    date_to_commit: Delay = field(default_factory=lambda: Delay(None, None, 0))
    window: float = 300.0
    problems: list[str] = field(default_factory=list)  # what could not be read, and why

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["topics"] = {t: [{"partition": p, "end_offset": o} for p, o in parts.items()]
                         for t, parts in self.topics.items()}
        out["lags"] = [{**asdict(lag), "lag": lag.lag} for lag in self.lags]
        out["taken_at"] = datetime.fromtimestamp(self.taken_at).astimezone().isoformat()
        return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-quantile (0..1) of ``values`` by the nearest-rank method; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def delay_of(values: Sequence[float]) -> Delay:
    return Delay(percentile(values, 0.5), percentile(values, 0.99), len(values))


def lags_of(ends: dict[str, dict[int, int]], committed: dict[str, dict[tuple[str, int], int]],
            source: str) -> list[Lag]:
    """One Lag per (group, topic, partition) the group committed or the topic has."""
    out = []
    for group, offsets in sorted(committed.items()):
        topics = {t for t, _ in offsets}
        for topic in sorted(topics):
            for partition, end in sorted(ends.get(topic, {}).items()):
                out.append(Lag(group, topic, partition, offsets.get((topic, partition), 0), end, source))
    return out


def parse_date(value: str) -> float | None:
    """A release date as a POSIX time (no offset: UTC); None when unreadable."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    for limit, unit, size in ((10, "ms", 0.001), (3600, "s", 1), (86400, "h", 3600)):
        if value < limit:
            return f"{value / size:.0f} {unit}" if unit == "ms" else f"{value / size:.1f} {unit}"
    return f"{value / 86400:.1f} d"


def render(status: Status) -> str:
    """The human table ``ocds-live status`` prints."""
    lines = [f"ocds-live status at {datetime.fromtimestamp(status.taken_at).astimezone():%Y-%m-%d %H:%M:%S %Z}"]
    lines.append("topics (partition: end offset)")
    for topic, parts in status.topics.items():
        shown = "  ".join(f"{p}:{o}" for p, o in parts.items()) or "missing"
        lines.append(f"  {topic:<28} {shown}   total {sum(parts.values())}")
    lines.append("consumer lag (group, topic, partition: committed / end = lag)")
    if not status.lags:
        lines.append("  no consumer group has committed offsets")
    for lag in status.lags:
        lines.append(f"  {lag.group:<28} {lag.topic}[{lag.partition}] {lag.committed}/{lag.end} = {lag.lag}"
                     f"  ({lag.source})")
    lines.append(f"store (generation {status.generation}): " + ", ".join(f"{n} {c}" for n, c in status.counts.items()))
    lines.append(f"projects: {status.projects} built, {status.projects_waiting} waiting for the project builder")
    lines.append(f"change log: head {status.head}" + (f" written {status.head_at}" if status.head_at else "")
                 + f"; published to Kafka through {status.published}")
    minutes = f"{status.window / 60:g} min"
    for title, delay in (("produced-at -> commit", status.produced_to_commit),
                         ("release date -> commit", status.date_to_commit)):
        lines.append(f"freshness, {title} (last {minutes}, {delay.samples} releases): "
                     f"p50 {_seconds(delay.p50)}, p99 {_seconds(delay.p99)}")
    for problem in status.problems:
        lines.append(f"PROBLEM: {problem}")
    return "\n".join(lines)


def gather(settings: Settings, *, window: float = 300.0, sample: int = SAMPLE) -> Status:
    """Read the state of Kafka and the store now. What cannot be read is named in ``problems``."""
    from core.exceptions import OcdsLiveError
    from core.kafka_state import committed_offsets, end_offsets
    from core.store import status as store
    from core.store.connection import connect, translated_errors

    status = Status(taken_at=time.time(), window=window)
    topics = (settings.releases_topic, settings.rejected_topic, settings.changes_topic)
    recent: list[tuple[str, int, int, str, float]] = []
    try:
        conn = connect(settings, autocommit=True)
        try:
            with translated_errors():
                status.counts = store.counts(conn)
                status.head, status.head_at, status.published = store.head(conn)
                status.generation, status.projects, status.projects_waiting = store.projects(conn)
                stored = store.processed(conn)
                recent = store.recent_releases(conn, window, sample)
        finally:
            conn.close()
    except OcdsLiveError as exc:
        hint = "; run `ocds-live db migrate`" if "does not exist" in str(exc) else ""
        status.problems.append(f"the store: {str(exc).splitlines()[0]}{hint}")
        stored = {}
    try:
        status.topics = end_offsets(settings, topics)
        status.lags = lags_of(status.topics, stored, "store")
        status.lags += lags_of(status.topics, committed_offsets(settings, topics), "kafka")
        produced = produced_at(settings, [(t, p, o) for t, p, o, _, _ in recent])
    except OcdsLiveError as exc:
        status.problems.append(f"kafka: {exc}")
        produced = {}
    if not status.lags and stored:
        status.lags = lags_of({}, stored, "store")
    status.produced_to_commit = delay_of([at - produced[(t, p, o)] for t, p, o, _, at in recent
                                          if (t, p, o) in produced])
    dates = [(parse_date(d), at) for _, _, _, d, at in recent]
    status.date_to_commit = delay_of([at - d for d, at in dates if d is not None])
    return status


def produced_at(settings: Settings, where: Sequence[tuple[str, int, int]]) -> dict[tuple[str, int, int], float]:
    """The ``produced-at`` header (else the Kafka timestamp) of the messages at ``where``, as POSIX times."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    from core.exceptions import BrokerError

    if not where:
        return {}
    wanted = set(where)
    spans: dict[tuple[str, int], tuple[int, int]] = {}
    for t, p, o in where:
        low, high = spans.get((t, p), (o, o))
        spans[(t, p)] = (min(low, o), max(high, o))
    out: dict[tuple[str, int, int], float] = {}
    try:
        consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None,
                                 enable_auto_commit=False, request_timeout_ms=10_000)
        try:
            consumer.assign([TopicPartition(t, p) for t, p in spans])
            for (t, p), (low, _) in spans.items():
                consumer.seek(TopicPartition(t, p), low)
            left = {tp: high for tp, (_, high) in spans.items()}
            deadline = time.monotonic() + READ_SECONDS
            while left and time.monotonic() < deadline:
                for tp, messages in consumer.poll(timeout_ms=500, max_records=1000).items():
                    for m in messages:
                        key = (tp.topic, tp.partition, m.offset)
                        if key in wanted:
                            header = headers_dict(m.headers).get(HEADER_PRODUCED_AT, "")
                            out[key] = int(header) / 1000 if header.isdigit() else m.timestamp / 1000
                        if m.offset >= left.get((tp.topic, tp.partition), -1):
                            left.pop((tp.topic, tp.partition), None)
                            consumer.pause(tp)
        finally:
            consumer.close()
    except KafkaError as exc:
        raise BrokerError(f"cannot read produced-at headers: {exc}") from exc
    return out
