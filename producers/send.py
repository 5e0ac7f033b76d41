"""Send a stream of :class:`~producers.loader.Item` to Kafka with a progress bar and a summary.

Acknowledgements are awaited in a sliding window (at most ``window`` unacknowledged releases), so
memory stays bounded whatever the input size; :func:`send_items` returns only once every release it
counts as sent was acknowledged (``acks=all``). A refusal raises :class:`~core.exceptions.BrokerError`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from core.exceptions import BrokerError, BrokerUnavailableError, ExtensionUnavailableError
from core.extensions import ExtensionResolver
from core.kafka import OutgoingRelease, ReleaseProducer
from core.settings import Settings
from producers.loader import Item, read_releases

EXAMPLES = 1000  # skipped and broken items kept with their location (the rest are only counted)
WINDOW = 4_000  # unacknowledged releases in flight, at most (each holds its bytes: memory)
BOOTSTRAP_TIMEOUT_MS = 8_000  # an unreachable broker fails the load in seconds, not kafka-python's 30 s

Row = tuple[str, str, str]  # (source, location, reason)


@dataclass
class Summary:
    """What one load did: releases sent (and acknowledged), what was skipped or broken, and why."""

    sent: int = 0
    bytes: int = 0
    seconds: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)  # skipped, by reason
    broken_count: int = 0
    skipped: list[Row] = field(default_factory=list)  # the first EXAMPLES
    broken: list[Row] = field(default_factory=list)  # the first EXAMPLES
    extensions: Counter[str] = field(default_factory=Counter)  # releases sent per declared extension URL
    unavailable: dict[str, str] = field(default_factory=dict)  # declared extension URL -> why it is unavailable

    def declare(self, urls: Iterable[str]) -> None:
        self.extensions.update(urls)

    def check_extensions(self, resolver: ExtensionResolver) -> None:
        """Find which declared extensions cannot be resolved (their releases are checked without them)."""
        for url in self.extensions:
            try:
                resolver.resolve(url)
            except ExtensionUnavailableError as exc:
                self.unavailable[url] = exc.reason

    @property
    def skipped_count(self) -> int:
        return sum(self.reasons.values())

    def add_unusable(self, item: Item) -> None:
        row = (item.source, item.location, item.skipped or "unusable")
        if item.broken:
            self.broken_count += 1
            if len(self.broken) < EXAMPLES:
                self.broken.append(row)
        else:
            self.reasons[item.skipped or "unusable"] += 1
            if len(self.skipped) < EXAMPLES:
                self.skipped.append(row)

    def report(self, limit: int = 20) -> str:
        rate = self.sent / self.seconds if self.seconds else 0.0
        lines = [f"sent {self.sent} releases ({self.bytes / 1e6:.1f} MB) in {self.seconds:.1f}s, {rate:.0f}/s; "
                 f"skipped {self.skipped_count}; broken {self.broken_count}"]
        for reason, count in self.reasons.most_common():
            lines.append(f"  skipped {count}: {reason}")
        if self.extensions:
            lines.append(f"  extensions declared: {len(self.extensions)}, unavailable: {len(self.unavailable)}")
        for url, why in sorted(self.unavailable.items()):
            lines.append(f"  unavailable extension ({self.extensions[url]} releases are checked without it): "
                         f"{url}: {why}")
        for title, rows, total in (("broken", self.broken, self.broken_count),
                                   ("skipped", self.skipped, self.skipped_count)):
            for source, location, reason in rows[:limit]:
                lines.append(f"  {title}: {source} {location}: {reason}")
            if total > limit:
                lines.append(f"  ... and {total - limit} more {title}")
        return "\n".join(lines)


class RateLimiter:
    """At most ``rate`` calls of :meth:`wait` per second (no limit when ``rate`` is None or 0)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next = time.monotonic()

    def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if self.next > now:
            time.sleep(self.next - now)
        self.next = max(self.next, now) + self.interval


def send_items(
    items: Iterable[Item], producer: ReleaseProducer, *, publisher: str, source: str,
    rate: float | None = None, progress: bool | None = None, window: int = WINDOW, timeout: float = 60.0,
) -> Summary:
    """Send every release item and wait for its acknowledgement; count and keep what was skipped."""
    summary = Summary()
    limiter = RateLimiter(rate)
    bar = _progress_bar() if (progress if progress is not None else sys.stderr.isatty()) else None
    pending: deque[tuple[Any, Item]] = deque()
    start = time.monotonic()
    unshown = 0
    try:
        for item in items:
            value, ocid = item.value, item.ocid
            if value is None or ocid is None:
                summary.add_unusable(item)
                continue
            if limiter.interval:
                limiter.wait()
            if item.extensions:
                summary.declare(item.extensions)
            outgoing = OutgoingRelease(ocid, item.release_id or "", value, publisher, source, item.extensions)
            pending.append((producer.send(outgoing), item))
            summary.sent += 1
            summary.bytes += len(value)
            if len(pending) > window:
                _acknowledged(*pending.popleft(), timeout)
            if bar is not None:
                unshown += 1
                if unshown >= 100 or limiter.interval:
                    bar.update(unshown)
                    unshown = 0
        producer.flush(timeout=timeout)
        while pending:
            _acknowledged(*pending.popleft(), timeout)
    finally:
        if bar is not None:
            bar.update(unshown)
            bar.close()
        summary.seconds = time.monotonic() - start
    return summary


def _acknowledged(future: Any, item: Item, timeout: float) -> None:
    from kafka.errors import KafkaError, KafkaTimeoutError

    try:
        future.get(timeout=timeout)
    except KafkaTimeoutError as exc:
        raise BrokerUnavailableError(
            f"kafka did not acknowledge {item.source} {item.location} (ocid={item.ocid}) within "
            f"{timeout:.0f}s: {exc}") from exc
    except KafkaError as exc:
        raise BrokerError(f"kafka refused {item.source} {item.location} (ocid={item.ocid}): {exc}") from exc


def _progress_bar() -> Any:
    from tqdm import tqdm

    return tqdm(unit=" releases", unit_scale=True, smoothing=0.1, file=sys.stderr, mininterval=0.5)


def load_paths(
    settings: Settings, paths: Sequence[str], *, publisher: str, rate: float | None = None,
    out: IO[str] | None = None, progress: bool | None = None,
) -> int:
    """``ocds-live load``: send every release in ``paths``; print one summary per path; the exit code.

    0 when releases were sent and every input could be read; 1 when nothing could be sent or an input
    could not be opened. A broker that is unreachable or refuses raises :class:`BrokerError` (the CLI
    exits 2 with its message); releases acknowledged before that stay on the topic.
    """
    from core.kafka import ensure_topics

    out = out or sys.stdout
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # its connection errors become one BrokerError
    # Connect before ensure_topics: the producer fails within BOOTSTRAP_TIMEOUT_MS when nobody answers.
    producer = ReleaseProducer(settings, client_id="ocds-live-load", bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    total_sent = 0
    unreadable = 0
    resolver = ExtensionResolver(settings.extensions_dir, settings.cache_dir, download=settings.extensions_download)
    try:
        ensure_topics(settings)
        for path in paths:
            try:
                summary = send_items(read_releases(path), producer, publisher=publisher,
                                     source=f"load:{path}", rate=rate, progress=progress)
            except OSError as exc:
                print(f"{path}: cannot read: {exc.strerror or exc}", file=out)
                unreadable += 1
                continue
            summary.check_extensions(resolver)
            print(f"{path}: {summary.report()}", file=out)
            total_sent += summary.sent
    finally:
        producer.close()
    if len(paths) > 1:
        print(f"total: sent {total_sent} releases from {len(paths) - unreadable} of {len(paths)} inputs", file=out)
    return 0 if total_sent and not unreadable else 1
