"""``POST /api/releases``: publishers push releases over HTTP with a bearer token.

The answer is 202 only after Kafka acknowledged every release (``acks=all``). Everything is checked
before anything is sent, so a refusal sends nothing. The limits, all on by default:

=====================================================  ======  ==============================================
limit                                                  status  setting
=====================================================  ======  ==============================================
no token, or a token of no publisher                   401     the publishers file
an ocid outside the publisher's prefixes               403     the publishers file
a body over the size limit (declared or streamed)      413     ``OCDS_LIVE_MAX_RELEASE_BYTES`` (10 MiB)
not JSON; a release without ocid/id/date; too deep     400     ``OCDS_LIVE_MAX_DEPTH`` (64 levels)
releases per second per publisher                      429     ``rate_limit`` of the publisher, else
                                                               ``OCDS_LIVE_PUBLISHER_RATE_LIMIT`` (200/s)
=====================================================  ======  ==============================================

The publishers file is read again within a second of a change (``ocds-live publishers add`` or
``rotate-token``): a rotated token stops working without a restart. A 429 carries ``Retry-After``;
every refusal is ``{"error": message, "status": status}``. When Kafka cannot be reached the answer is
503 with Retry-After; the producer's delivery timeout has then expired, so nothing of that request is
written later. A retry is safe: the same release again changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request

from core.checks import too_deep
from core.exceptions import (
    AuthenticationError,
    BrokerError,
    ConfigurationError,
    ExtensionUnavailableError,
    PrefixNotAllowedError,
)
from core.extensions import ExtensionResolver
from core.kafka import OutgoingRelease, ReleaseProducer
from core.publishers import Publisher, Publishers, load_publishers
from core.settings import Settings
from feed_server.ratelimit import TokenBucket
from feed_server.responses import JSON, problem

router = APIRouter()

DELIVERY_TIMEOUT_MS = 8_000
RELOAD_EVERY = 1.0  # seconds between looks at the publishers file
logger = logging.getLogger("ocds_live.ingest")


class Ingest:
    """What the ingest endpoint needs: publishers, rate limits and a lazily-created producer."""

    def __init__(self, settings: Settings, publishers: Publishers) -> None:
        self.settings = settings
        self.publishers = publishers
        self.buckets: dict[str, TokenBucket] = {}
        self.resolver = ExtensionResolver(settings.extensions_dir, settings.cache_dir,
                                          download=settings.extensions_download)
        self._producer: ReleaseProducer | None = None
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = self.settings.publishers_file.stat()
        except OSError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def current_publishers(self) -> Publishers:
        """The publishers, read again when the file changed: a rotated token applies within RELOAD_EVERY."""
        now = time.monotonic()
        if now - self._checked >= RELOAD_EVERY:
            self._checked = now
            stamp = self._file_stamp()
            if stamp is not None and stamp != self._stamp:
                try:
                    self.publishers = load_publishers(self.settings.publishers_file)
                    self._stamp = stamp
                except ConfigurationError as exc:
                    logger.warning("kept the publishers read before, as the file now fails: %s", exc)
        return self.publishers

    def producer(self) -> ReleaseProducer:
        with self._lock:
            if self._producer is None:
                self._producer = ReleaseProducer(
                    self.settings, client_id="ocds-live-ingest",
                    delivery_timeout_ms=DELIVERY_TIMEOUT_MS, request_timeout_ms=DELIVERY_TIMEOUT_MS - 1000,
                    max_block_ms=DELIVERY_TIMEOUT_MS, bootstrap_timeout_ms=DELIVERY_TIMEOUT_MS,
                )
            return self._producer

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)

    def rate_of(self, publisher: Publisher) -> float:
        """The publisher's own rate limit, else the default one: a limit is always on."""
        return float(publisher.rate_limit or self.settings.publisher_rate_limit)

    def wait_for(self, publisher: Publisher, n: int) -> float:
        bucket = self.buckets.setdefault(publisher.name, TokenBucket(self.rate_of(publisher)))
        return bucket.take(n)

    def unavailable(self, urls: tuple[str, ...]) -> dict[str, str]:
        """The declared extensions that cannot be resolved, and why (their releases are checked without them)."""
        missing = {}
        for url in urls:
            try:
                self.resolver.resolve(url)
            except ExtensionUnavailableError as exc:
                missing[url] = exc.reason
        return missing

    def send(self, releases: list[OutgoingRelease]) -> list[str]:
        self.producer().send_all(releases, timeout=DELIVERY_TIMEOUT_MS / 1000 + 2)
        return [r.event_id for r in releases]


def _releases_of(body: Any) -> tuple[list[Any], str, tuple[str, ...]]:
    """The releases in a body (one release, a list, or a release package), how to name their places, and the
    extensions a package declares."""
    if isinstance(body, list):
        return body, "/{i}", ()
    if isinstance(body, dict) and "releases" in body and "ocid" not in body:
        if not isinstance(body["releases"], list):
            raise ValueError("/releases: a release package's 'releases' must be an array")
        declared = body.get("extensions") or []
        if not isinstance(declared, list) or not all(isinstance(u, str) and u for u in declared):
            raise ValueError("/extensions: a release package's 'extensions' must be an array of URLs")
        return body["releases"], "/releases/{i}", tuple(dict.fromkeys(declared))
    return [body], "", ()


@router.post("/api/releases", status_code=202, response_class=JSON)
async def post_releases(request: Request) -> JSON:
    """Publish releases (a release, a list of releases, or a release package). Needs a publisher token."""
    ingest: Ingest = request.app.state.ingest
    settings: Settings = request.app.state.settings
    auth = request.headers.get("authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
    try:
        publisher = ingest.current_publishers().authenticate(token)
    except AuthenticationError as exc:
        return problem(401, str(exc), **{"WWW-Authenticate": "Bearer"})

    limit = settings.max_release_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return problem(413, f"the body is {declared} bytes; the limit is {limit}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return problem(413, f"the body is over the limit of {limit} bytes")
    try:
        parsed = orjson.loads(body)
        items, place, extensions = _releases_of(parsed)
    except orjson.JSONDecodeError as exc:
        return problem(400, f"the body is not JSON: {exc}")
    except ValueError as exc:
        return problem(400, str(exc))
    if not items:
        return problem(400, "no releases in the body")

    outgoing: list[OutgoingRelease] = []
    for i, item in enumerate(items):
        where = place.format(i=i) or "/"
        if not isinstance(item, dict):
            return problem(400, f"{where}: a release must be a JSON object, not {type(item).__name__}")
        for key in ("ocid", "id", "date"):
            if not isinstance(item.get(key), str) or not item[key]:
                return problem(400, f"{where}/{key}: a release needs '{key}' as a non-empty string")
        try:
            publisher.check(item["ocid"])
        except PrefixNotAllowedError as exc:
            return problem(403, f"{where}/ocid: {exc}")
        deep = too_deep(item, settings.max_depth)
        if deep is not None:
            return problem(400, f"{where}: {deep.message}")
        outgoing.append(OutgoingRelease(item["ocid"], item["id"], orjson.dumps(item), publisher.name, "http",
                                        extensions))

    wait = ingest.wait_for(publisher, len(outgoing))
    if wait > 0:
        retry = str(max(1, int(wait + 0.999)))
        rate = ingest.rate_of(publisher)
        return problem(429, f"publisher {publisher.name!r} is over its rate of {rate:g} releases/s; "
                            f"retry after {retry}s", **{"Retry-After": retry})
    try:
        ids = await asyncio.to_thread(ingest.send, outgoing)
    except BrokerError as exc:
        return problem(503, f"kafka is unavailable, nothing was accepted: {exc}; retry later", **{"Retry-After": "5"})
    answer: dict[str, Any] = {"accepted": len(ids), "event_ids": ids}
    if extensions:
        missing = await asyncio.to_thread(ingest.unavailable, extensions)
        answer["extensions"] = {"declared": list(extensions), "unavailable": missing}
    return JSON(answer, status_code=202)
