"""``GET /api/status`` (operator token) and the same figures as ``/metrics`` gauges.

The status is gathered (core.status: Kafka and the store) in a thread, at most once per ``MAX_AGE``
seconds however often it is asked for; a scrape of /metrics never waits for more than ``SCRAPE_WAIT``
seconds: it gets the last status, with ``ocds_status_age_seconds`` saying how old it is.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass, field

from fastapi import APIRouter, FastAPI, Request
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from core.settings import Settings
from core.status import Status, gather
from feed_server.responses import JSON, problem

router = APIRouter()

MAX_AGE = 10.0
SCRAPE_WAIT = 3.0


@dataclass
class StatusCache:
    """The last status, and the refresh running now (one at a time)."""

    settings: Settings
    last: Status | None = None
    running: asyncio.Task[Status] | None = field(default=None, repr=False)

    def stale(self) -> bool:
        return self.last is None or time.time() - self.last.taken_at > MAX_AGE

    async def refresh(self) -> Status:
        if self.running is None or self.running.done():
            self.running = asyncio.create_task(asyncio.to_thread(gather, self.settings))
        self.last = await asyncio.shield(self.running)
        return self.last

    async def get(self, wait: float | None = None) -> Status | None:
        """A status at most MAX_AGE old, waiting for a refresh up to ``wait`` seconds (None: as long as it takes)."""
        if not self.stale():
            return self.last
        try:
            return await asyncio.wait_for(self.refresh(), wait)
        except TimeoutError:
            return self.last


def cache_of(app: FastAPI) -> StatusCache:
    cache: StatusCache | None = getattr(app.state, "status_cache", None)
    if cache is None:
        cache = app.state.status_cache = StatusCache(app.state.settings)
    return cache


def _operator(request: Request) -> JSON | None:
    """None when the request carries the operator token, else the refusal."""
    settings: Settings = request.app.state.settings
    if settings.operator_token is None:
        return problem(403, "operator actions are disabled on this server: set OCDS_LIVE_OPERATOR_TOKEN to enable them")
    auth = request.headers.get("authorization", "")
    given = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    if not hmac.compare_digest(given.encode(), settings.operator_token.get_secret_value().encode()):
        return problem(401, "the operator token is required: send 'Authorization: Bearer <operator token>'",
                       **{"WWW-Authenticate": "Bearer"})
    return None


@router.get("/api/status", response_class=JSON, include_in_schema=False)
async def api_status(request: Request) -> JSON:
    """Topics, consumer lag, store counts, the change log's head and freshness (operator token)."""
    refused = _operator(request)
    if refused is not None:
        return refused
    status = await cache_of(request.app).get()
    if status is None:  # pragma: no cover - get() without a wait always has one
        return problem(503, "the status could not be gathered; retry")
    return JSON(status.as_dict())


def gauges(status: Status | None, now: float | None = None) -> bytes:
    """The status as Prometheus text: ``ocds_status_*`` gauges."""
    registry = CollectorRegistry()

    def gauge(name: str, text: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(f"ocds_status_{name}", text, labels, registry=registry)

    up = gauge("up", "1 when the last status read Kafka and the store without a problem")
    age = gauge("age_seconds", "seconds since the status was gathered")
    if status is None:
        up.set(0)
        return generate_latest(registry)
    up.set(0 if status.problems else 1)
    age.set((now or time.time()) - status.taken_at)
    end = gauge("topic_end_offset", "end offset per topic partition", ("topic", "partition"))
    for topic, parts in status.topics.items():
        for partition, offset in parts.items():
            end.labels(topic, str(partition)).set(offset)
    lag = gauge("consumer_lag", "messages a consumer group has not committed yet",
                ("group", "topic", "partition", "source"))
    for item in status.lags:
        lag.labels(item.group, item.topic, str(item.partition), item.source).set(item.lag)
    rows = gauge("store_rows", "rows per store table", ("table",))
    for table, count in status.counts.items():
        rows.labels(table).set(count)
    gauge("changes_head", "the change log's newest cursor").set(status.head)
    gauge("changes_published", "the newest cursor the relay has sent to the changes topic").set(status.published)
    gauge("store_generation", "the store's generation (replay --switch adds one)").set(status.generation)
    gauge("projects_waiting", "projects marked for the project builder, not rebuilt yet").set(status.projects_waiting)
    fresh = gauge("freshness_seconds", "delay to the store commit over the last window, by quantile",
                  ("since", "quantile"))
    samples = gauge("freshness_samples", "releases the freshness was measured on", ("since",))
    for since, delay in (("produced_at", status.produced_to_commit), ("release_date", status.date_to_commit)):
        samples.labels(since).set(delay.samples)
        for quantile, value in (("0.5", delay.p50), ("0.99", delay.p99)):
            if value is not None:
                fresh.labels(since, quantile).set(value)
    return generate_latest(registry)


async def exposition(app: FastAPI) -> bytes:
    """The status gauges for /metrics, waiting at most SCRAPE_WAIT seconds for a fresh status."""
    return gauges(await cache_of(app).get(wait=SCRAPE_WAIT))
