"""Token buckets: per publisher for ingest, per client address for reads."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """``rate`` tokens per second with a burst of one second's worth."""

    rate: float
    tokens: float = 0.0
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.rate

    def take(self, n: int = 1) -> float:
        """Take ``n`` tokens; 0.0 when allowed, else the seconds to wait before retrying.

        A request larger than the burst is allowed when the bucket is full, so that it can ever pass.
        """
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if n <= self.tokens or (n > self.rate and self.tokens >= self.rate):
            self.tokens -= n
            return 0.0
        return (min(n, self.rate) - self.tokens) / self.rate


class ClientLimiter:
    """One bucket per client address; idle buckets are forgotten so memory stays bounded."""

    def __init__(self, rate: float, max_clients: int = 100_000) -> None:
        self.rate = rate
        self.max_clients = max_clients
        self.buckets: dict[str, TokenBucket] = {}

    def wait_for(self, client: str) -> float:
        bucket = self.buckets.get(client)
        if bucket is None:
            if len(self.buckets) >= self.max_clients:
                self._forget_idle()
            bucket = self.buckets[client] = TokenBucket(self.rate)
        return bucket.take(1)

    def _forget_idle(self) -> None:
        now = time.monotonic()
        for client in [c for c, b in self.buckets.items() if now - b.stamp > 60]:
            del self.buckets[client]
