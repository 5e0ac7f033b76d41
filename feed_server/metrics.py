"""Prometheus metrics of the feed server, in a registry of its own."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.ws_connections = Gauge("ocds_ws_connections", "open websocket connections", registry=r)
        self.ws_messages = Counter("ocds_ws_messages", "websocket messages sent", registry=r)
        self.ws_slow_closed = Counter("ocds_ws_slow_closed", "subscribers closed for being too slow", registry=r)
        self.ws_lag_max = Gauge("ocds_ws_lag_max", "largest subscriber lag behind the change log", registry=r)
        self.ws_lag_sum = Gauge("ocds_ws_lag_sum", "total subscriber lag behind the change log", registry=r)
        self.head = Gauge("ocds_changes_head", "newest change cursor the server has seen", registry=r)
        self.requests = Histogram("ocds_http_request_seconds", "HTTP request latency", ["route", "status"],
                                  registry=r, buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.rate_limited = Counter("ocds_http_rate_limited", "requests answered 429", registry=r)
        self.connections_refused = Counter("ocds_http_connections_refused", "HTTP connections refused (429) over "
                                           "the limit per client address", registry=r)


METRICS = Metrics()
