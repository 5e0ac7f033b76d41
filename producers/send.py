"""Send a stream of :class:`~producers.loader.Item` to Kafka with a progress bar and a summary."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from core.kafka import OutgoingRelease, ReleaseProducer
from producers.loader import Item


@dataclass
class Summary:
    sent: int = 0
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (source, location, reason)
    broken: list[tuple[str, str, str]] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0

    def report(self, limit: int = 20) -> str:
        rate = self.sent / self.seconds if self.seconds else 0.0
        lines = [f"sent {self.sent} releases ({self.bytes / 1e6:.1f} MB) in {self.seconds:.1f}s, {rate:.0f}/s; "
                 f"skipped {len(self.skipped)}; broken {len(self.broken)}"]
        for title, rows in (("broken", self.broken), ("skipped", self.skipped)):
            for source, location, reason in rows[:limit]:
                lines.append(f"  {title}: {source} {location}: {reason}")
            if len(rows) > limit:
                lines.append(f"  ... and {len(rows) - limit} more {title}")
        return "\n".join(lines)


class RateLimiter:
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
    rate: float | None = None, progress: bool | None = None,
) -> Summary:
    """Send every release item; wait for all acknowledgements before returning."""
    summary = Summary()
    limiter = RateLimiter(rate)
    bar: Any = None
    if progress if progress is not None else sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(unit=" releases", smoothing=0.1, file=sys.stderr)
    start = time.monotonic()
    pending: list[Any] = []
    try:
        for item in items:
            if item.value is None or item.ocid is None:
                target = summary.broken if item.broken else summary.skipped
                target.append((item.source, item.location, item.skipped or "unusable"))
                continue
            limiter.wait()
            release = OutgoingRelease(item.ocid, item.release_id or "", item.value, publisher, source)
            pending.append(producer.send(release))
            summary.sent += 1
            summary.bytes += len(item.value)
            if len(pending) >= 10_000:
                for future in pending:
                    future.get(timeout=60)
                pending.clear()
            if bar is not None:
                bar.update(1)
        producer.flush(timeout=60)
        for future in pending:
            future.get(timeout=60)
    finally:
        if bar is not None:
            bar.close()
        summary.seconds = time.monotonic() - start
    return summary
